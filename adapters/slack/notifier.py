"""Core events -> Slack: the request card (posted on ``Accepted``, edited as the work moves),
the image as a file in the card's thread, failures and deletions.

The dispatcher calls :meth:`SlackNotifier.notify` in order per generation, at least once;
raising means "try again later". Progress edits are coalesced (at most one per
``min_edit_interval`` seconds per card, at most ``max_progress_edits`` per generation, the
latter across processes when they share the store: ``progress_slot``); final edits always
happen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from tmbot import (
    Accepted,
    Deleted,
    Delivered,
    Event,
    Failed,
    Generation,
    MessageLink,
    Notice,
    Queued,
    Started,
)

log = logging.getLogger(__name__)

PLATFORM = "slack"

#: what a card says about the key that pays (e.g. "your key …a1b2"); None when unknown
KeyLabel = Callable[[Generation], Awaitable[str | None]]

#: takes progress edit ``n`` (1, 2, …) of a generation in the shared store: True for the one
#: caller that gets it, across every process (several may hand over one generation's events)
ProgressSlot = Callable[[str, int], Awaitable[bool]]

#: Slack errors that no retry will fix: the message or file is gone, or we cannot post there
GONE = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "file_not_found",
        "file_deleted",
        "cant_delete_message",
    }
)
NO_PLACE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})


def slack_error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except Exception:  # pragma: no cover - a malformed answer
        return ""


@dataclass
class _Edits:
    last: float = 0.0
    progress: int = 0


class SlackNotifier:
    platform = PLATFORM

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        min_edit_interval: float = 3.0,
        max_progress_edits: int = 2,
        share_retries: int = 5,
        share_delay: float = 0.2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.min_edit_interval = min_edit_interval
        self.max_progress_edits = max_progress_edits
        self.share_retries = share_retries
        self.share_delay = share_delay
        self.key_label: KeyLabel | None = None  # set by the composition root
        #: set when several processes share the store: the edit cap then holds across them
        self.progress_slot: ProgressSlot | None = None
        self._monotonic = monotonic
        self._edits: dict[str, _Edits] = {}

    async def notify(self, event: Event, notice: Notice) -> list[MessageLink]:
        gen = event.generation
        match event:
            case Accepted():
                return await self._accepted(gen, notice)
            case Queued(position=position, eta_seconds=eta):
                await self._progress(gen, notice, blocks.queued_status(position, eta))
            case Started():
                elapsed = 0.0
                if gen.submitted_at is not None:
                    elapsed = max(0.0, time.time() - gen.submitted_at)
                await self._progress(gen, notice, blocks.started_status(gen, elapsed))
            case Delivered():
                return await self._delivered(event, notice)
            case Failed(reason=reason):
                await self._failed(gen, notice, reason)
            case Deleted():
                await self._deleted(event, notice)
        return []

    # --- the card ----------------------------------------------------------------------

    async def _label(self, gen: Generation) -> str | None:
        if self.key_label is None:
            return None
        try:
            return await self.key_label(gen)
        except Exception:  # the card is still worth posting without it
            log.warning("could not name the key of %s", gen.id, exc_info=True)
            return None

    async def _accepted(self, gen: Generation, notice: Notice) -> list[MessageLink]:
        if notice.link("card") is not None:
            return []
        if gen.place.card_message is not None:
            return [self._link(gen, gen.place.card_message, "card")]
        text, card = blocks.card_blocks(
            gen, ":inbox_tray: Accepted, on its way.", key_label=await self._label(gen)
        )
        kwargs: dict[str, Any] = {}
        if gen.place.thread is not None:
            kwargs["thread_ts"] = gen.place.thread
        try:
            answer = await self.client.chat_postMessage(
                channel=gen.place.channel, text=text, blocks=card, unfurl_links=False, **kwargs
            )
        except SlackApiError as exc:
            if slack_error(exc) in NO_PLACE:
                log.warning("cannot post the card of %s: %s", gen.id, slack_error(exc))
                return []
            raise
        self._edits[gen.id] = _Edits(last=self._monotonic())
        made = [self._link(gen, str(answer["ts"]), "card")]
        if gen.place.thread is not None and gen.regenerated_from is None:
            # a brief that started a thread (a mention, a request channel's message): a
            # mention in that thread refines this generation
            made.append(self._link(gen, gen.place.thread, "thread"))
        return made

    async def _edit(
        self, gen: Generation, notice: Notice, status: str, *, buttons: bool = False
    ) -> None:
        card = notice.link("card")
        if card is None:
            return
        text, content = blocks.card_blocks(
            gen, status, key_label=await self._label(gen), buttons=buttons
        )
        try:
            await self.client.chat_update(
                channel=card.channel, ts=card.message_id, text=text, blocks=content
            )
        except SlackApiError as exc:
            if slack_error(exc) in GONE | NO_PLACE:
                log.info("card of %s not edited: %s", gen.id, slack_error(exc))
                return
            raise
        self._edits.setdefault(gen.id, _Edits()).last = self._monotonic()

    async def _progress(self, gen: Generation, notice: Notice, status: str) -> None:
        edits = self._edits.setdefault(gen.id, _Edits())
        now = self._monotonic()
        if edits.progress >= self.max_progress_edits or (
            edits.last and now - edits.last < self.min_edit_interval
        ):
            return  # coalesced: a later state (or the final one) will show
        edits.progress += 1
        if self.progress_slot is not None:
            # another process may have handed over earlier events of this generation (and
            # made edits this one does not remember): take a slot in the shared store
            while not await self.progress_slot(gen.id, edits.progress):
                edits.progress += 1
                if edits.progress > self.max_progress_edits:
                    return
        await self._edit(gen, notice, status)

    # --- the image ---------------------------------------------------------------------

    async def _delivered(self, event: Delivered, notice: Notice) -> list[MessageLink]:
        gen = event.generation
        made: list[MessageLink] = []
        if notice.link("image") is None:
            card = notice.link("card")
            channel = card.channel if card is not None else gen.place.channel
            thread = gen.place.thread or (card.message_id if card is not None else None)
            kwargs: dict[str, Any] = {}
            if thread is not None:
                kwargs["thread_ts"] = thread
            upload = await self.client.files_upload_v2(
                channel=channel,
                content=event.image,
                filename=event.filename,
                title=event.filename,
                initial_comment=blocks.image_comment(
                    gen, event.credits_used, event.credits_remaining
                ),
                **kwargs,
            )
            file_id = str(upload["file"]["id"])
            file_link = self._link(gen, file_id, "file", channel=channel)
            # the file is posted: remember it before anything else can fail
            await notice.record(file_link)
            made.append(file_link)
            ts = await self._file_ts(file_id, channel)
            if ts is not None:
                image = self._link(gen, ts, "image", channel=channel)
            else:
                image = self._link(gen, f"file:{file_id}", "image", channel=channel)
            await notice.record(image)
            made.append(image)
        await self._edit(
            gen,
            notice,
            blocks.done_status(event.credits_used, event.credits_remaining, gen),
            buttons=True,
        )
        self._edits.pop(gen.id, None)
        return made

    async def _file_ts(self, file_id: str, channel: str) -> str | None:
        """The ts of the message showing the file: Slack shares an upload asynchronously,
        so files.info may not list it at once."""
        for attempt in range(self.share_retries):
            info = await self.client.files_info(file=file_id)
            shares = info["file"].get("shares") or {}
            for kind in ("public", "private"):
                entries = (shares.get(kind) or {}).get(channel) or []
                if entries:
                    return str(entries[0]["ts"])
            await asyncio.sleep(self.share_delay * (attempt + 1))
        return None

    # --- failures and deletions ----------------------------------------------------------

    async def _failed(self, gen: Generation, notice: Notice, reason: str) -> None:
        await self._edit(gen, notice, blocks.failed_status(reason))
        card = notice.link("card")
        self._edits.pop(gen.id, None)
        if card is None:
            return
        thread = gen.place.thread or card.message_id
        try:
            await self.client.chat_postMessage(
                channel=card.channel,
                thread_ts=thread,
                text=f"That image could not be made: {blocks.escape(reason)}",
            )
        except SlackApiError as exc:
            if slack_error(exc) not in NO_PLACE | GONE:
                raise

    async def _deleted(self, event: Deleted, notice: Notice) -> None:
        gen = event.generation
        file_link = notice.link("file")
        image = notice.link("image")
        # the file first (the image itself), then its message (the comment stays otherwise)
        if file_link is not None:
            await self._forgiving(self.client.files_delete(file=file_link.message_id))
        if image is not None and not image.message_id.startswith("file:"):
            await self._forgiving(
                self.client.chat_delete(channel=image.channel, ts=image.message_id)
            )
        await self._edit(gen, notice, blocks.deleted_status(event.by_label))

    @staticmethod
    async def _forgiving(call: Awaitable[Any]) -> None:
        """A deletion whose target may already be gone (a retried event, a person's click)."""
        try:
            await call
        except SlackApiError as exc:
            if slack_error(exc) not in GONE:
                raise

    @staticmethod
    def _link(
        gen: Generation, message_id: str, kind: str, *, channel: str | None = None
    ) -> MessageLink:
        return MessageLink(PLATFORM, channel or gen.place.channel, message_id, gen.id, kind=kind)
