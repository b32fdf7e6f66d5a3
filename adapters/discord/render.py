"""Embeds and text within Discord's limits. Everything echoed goes out with
``AllowedMentions.none()`` (see :data:`NO_PINGS`)."""

from __future__ import annotations

import discord

from tmbot import Generation, describe_spec, priced

#: Discord's limits (characters)
CONTENT_MAX = 2000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELD_MAX = 1024
EMBED_TOTAL_MAX = 6000
MODAL_TITLE_MAX = 45
TEXT_INPUT_MAX = 4000
#: how much of a brief the card shows (well inside the description's limit)
CARD_BRIEF_MAX = 1500

NO_PINGS = discord.AllowedMentions.none()

COLOURS = {
    "accepted": discord.Colour.light_grey(),
    "queued": discord.Colour.light_grey(),
    "started": discord.Colour.blurple(),
    "delivered": discord.Colour.green(),
    "failed": discord.Colour.red(),
    "deleted": discord.Colour.dark_grey(),
}


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending with "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def progress_bar(fraction: float, width: int = 12) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "▰" * filled + "▱" * (width - filled)


def card(
    gen: Generation, status: str, *, state: str, fingerprint: str | None = None
) -> discord.Embed:
    """The request card: who asked, the brief, parameters, cost, the paying key, the status."""
    spec = gen.spec
    embed = discord.Embed(
        title=cut(f"🎨 {status}", EMBED_TITLE_MAX),
        description=cut(spec.brief, CARD_BRIEF_MAX),
        colour=COLOURS.get(state, discord.Colour.light_grey()),
    )
    embed.add_field(name="Asked by", value=f"<@{gen.actor.user_id}>", inline=True)
    params = [spec.model, spec.aspect_ratio, spec.resolution]
    if spec.taste:
        params.append(f"taste {spec.taste}")
    if spec.image_urls:
        params.append(f"{len(spec.image_urls)} reference image(s)")
    embed.add_field(name="Parameters", value=cut(", ".join(params), EMBED_FIELD_MAX), inline=True)
    if gen.cost is not None and priced(spec.provider):
        embed.add_field(name="Cost", value=f"{gen.cost:g} credits", inline=True)
    if fingerprint:
        # the card is public: whose key it is, not "your key"
        key = f"{gen.actor.label}'s key" if gen.key.owner else "team key"
        embed.add_field(name="Key", value=f"{key} {fingerprint}", inline=True)
    if gen.regenerated_from:
        embed.add_field(name="From", value=f"`{gen.regenerated_from}`", inline=True)
    embed.set_footer(text=f"id {gen.id}")
    return embed


def image_caption(gen: Generation, credits_used: float | None, remaining: float | None) -> str:
    """The words sent with the image: the prompt used and the credits."""
    prompt = gen.prompt_used or gen.spec.brief
    credits = ""
    if credits_used is not None:
        word = "credits" if priced(gen.spec.provider) else "reported cost"
        credits = f" · {credits_used:g} {word}"
    if remaining is not None:
        credits += f" · {remaining:g} left"
    spec = gen.spec
    tail = f"\n-# `{gen.id}` · {spec.model}, {spec.aspect_ratio}, {spec.resolution}{credits}"
    return cut(f"**Prompt:** {prompt}", CONTENT_MAX - len(tail)) + tail


def describe(gen: Generation) -> str:
    return describe_spec(gen.spec)


def text(message: str) -> str:
    """Any text for a message's content, within the limit."""
    return cut(message, CONTENT_MAX)
