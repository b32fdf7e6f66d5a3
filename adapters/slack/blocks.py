"""How tmbot looks in Slack: escaping, the request card (Block Kit), the image comment.

Everything a person typed goes through :func:`escape` before it reaches ``text`` or a
``mrkdwn`` block, so ``<!channel>`` or ``<@U…>`` in a brief pings nobody.
"""

from __future__ import annotations

from typing import Any

from tmbot import Generation, describe_spec, priced

Block = dict[str, Any]

#: action ids of the finished card's buttons (their value is the generation id)
AGAIN = "tmbot_again"
DELETE = "tmbot_delete"
#: the key modal's callback id, block id and input action id
KEY_VIEW = "tmbot_key"
KEY_BLOCK = "key_block"
KEY_INPUT = "key_input"


def escape(text: str) -> str:
    """Slack's three control characters, escaped (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def progress_bar(fraction: float, width: int = 10) -> str:
    done = max(0, min(width, round(fraction * width)))
    return "▓" * done + "░" * (width - done) + f" {round(fraction * 100):d}%"


def _amount(value: float) -> str:
    return f"{value:g}"


def card_blocks(
    gen: Generation,
    status: str,
    *,
    key_label: str | None = None,
    buttons: bool = False,
) -> tuple[str, list[Block]]:
    """The request card: fallback text and blocks. ``status`` is already Slack text."""
    who = escape(gen.actor.label)
    brief = escape(describe_spec(gen.spec))
    cost = ""
    if gen.cost is not None:
        cost = f" · {_amount(gen.cost)} credits" if priced(gen.spec.provider) else ""
    paid = f" · paid by {escape(key_label)}" if key_label else ""
    context = f"asked by {who}{cost}{paid} · `{gen.id}`"
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": brief}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": status}},
    ]
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "block_id": "tmbot_card_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": AGAIN,
                        "text": {"type": "plain_text", "text": "Again"},
                        "value": gen.id,
                    },
                    {
                        "type": "button",
                        "action_id": DELETE,
                        "text": {"type": "plain_text", "text": "Delete"},
                        "value": gen.id,
                        "style": "danger",
                    },
                ],
            }
        )
    return f"{brief}: {status}", blocks


def queued_status(position: int, eta: float | None) -> str:
    about = f", expected to start in about {eta:.0f} s" if eta else ""
    return f":hourglass_flowing_sand: Queued: position {position}{about}."


def started_status(gen: Generation, elapsed: float) -> str:
    estimate = gen.estimate_seconds
    if not estimate:
        return ":art: Generating…"
    fraction = min(0.95, max(0.0, elapsed / estimate))
    return f":art: Generating `{progress_bar(fraction)}` (about {estimate:.0f} s)"


def done_status(
    credits_used: float | None, credits_remaining: float | None, gen: Generation
) -> str:
    parts = []
    if credits_used is not None:
        word = "credits" if priced(gen.spec.provider) else "reported cost"
        parts.append(f"{_amount(credits_used)} {word}")
    if credits_remaining is not None:
        parts.append(f"{_amount(credits_remaining)} left")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f":white_check_mark: Done{detail}: the image is in the thread."


def failed_status(reason: str) -> str:
    return f":x: Failed: {escape(reason)}"


def deleted_status(by_label: str) -> str:
    return f":wastebasket: Deleted by {escape(by_label)}."


def image_comment(gen: Generation, credits_used: float | None, remaining: float | None) -> str:
    prompt = gen.prompt_used or gen.spec.brief
    parts = [f"Prompt used: {escape(prompt)}"]
    if credits_used is not None:
        parts.append(f"credits used: {_amount(credits_used)}")
    if remaining is not None:
        parts.append(f"left: {_amount(remaining)}")
    return " · ".join(parts)


def key_modal(provider: str, scope: str, channel: str, label: str) -> Block:
    """A private form for a key: one plain-text input (the key is never echoed)."""
    return {
        "type": "modal",
        "callback_id": KEY_VIEW,
        "private_metadata": f"{provider}|{scope}|{channel}",
        "title": {"type": "plain_text", "text": "tmbot key"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": KEY_BLOCK,
                "label": {"type": "plain_text", "text": label[:2000]},
                "element": {
                    "type": "plain_text_input",
                    "action_id": KEY_INPUT,
                    "placeholder": {"type": "plain_text", "text": "paste the API key"},
                },
            }
        ],
    }
