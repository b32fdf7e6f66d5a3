"""Core events -> Discord: the request card (an embed) and its thread, card edits (progress
coalesced), the image as a file in the thread (nonce + ``enforce_nonce``, recorded at once),
failures in plain words, deletions.

Links stored per generation: ``card`` (channel, message), ``thread`` (the thread id as both
channel and message: a thread started from a message has that message's id) and ``image``.
Raising from :meth:`DiscordNotifier.notify` means "try again later" (the dispatcher backs off).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from adapters.discord import PLATFORM, images, render
from adapters.discord.views import result_buttons
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

#: progress edits of one card at most this often (finals always edit)
EDIT_INTERVAL = 3.0
THREAD_NAME_MAX = 100
#: uploads refused as too large (413) are re-encoded smaller at most this often
MAX_UPLOAD_TRIES = 4
#: the progress bar moves at these fractions of the provider's estimate
PROGRESS_STEPS = (0.25, 0.5, 0.75)
#: how many finished generations the notifier remembers (to drop late progress edits)
FINAL_MEMORY = 10_000

Fingerprint = Callable[[Generation], Awaitable[str | None]]


def nonce_for(generation_id: str) -> str:
    """Discord's message nonce for a generation's image (at most 25 characters); discord.py
    sends ``enforce_nonce`` with it, so a repeated send returns the first message."""
    return f"tmbot-{generation_id}"[:25]


class DiscordNotifier:
    def __init__(
        self,
        client: discord.Client,
        *,
        edit_interval: float = EDIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.edit_interval = edit_interval
        self.clock = clock
        self.fingerprint: Fingerprint | None = None  # set once the engine exists
        self._edited: dict[str, float] = {}
        self._pending: dict[str, tuple[Generation, Notice, str, str]] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._tickers: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._final: dict[str, None] = {}  # generations whose card shows a final state
        #: provider seconds -> real seconds (the engine's clock; set with the engine)
        self.real_seconds: Callable[[float], float] = lambda seconds: seconds

    async def notify(self, event: Event, notice: Notice) -> Sequence[MessageLink]:
        match event:
            case Accepted():
                return await self._accepted(event.generation, notice)
            case Queued(position=position):
                await self._progress(
                    event.generation, notice, f"Queued — position {position}", "queued"
                )
            case Started():
                gen = event.generation
                await self._progress(gen, notice, self._generating(gen, 0.0), "started")
                if gen.estimate_seconds and gen.id not in self._tickers:
                    self._tickers[gen.id] = asyncio.create_task(self._tick(gen, notice))
            case Delivered():
                return await self._delivered(event, notice)
            case Failed(reason=reason):
                await self._failed(event.generation, notice, reason)
            case Deleted():
                await self._deleted(event, notice)
        return []

    # --- where things are -------------------------------------------------------------

    def _messageable(self, channel_id: str) -> discord.abc.Messageable:
        found = self.client.get_channel(int(channel_id))
        if isinstance(found, discord.abc.Messageable):
            return found
        return self.client.get_partial_messageable(int(channel_id))

    async def _thread(self, thread_id: str) -> discord.Thread | None:
        found = self.client.get_channel(int(thread_id))
        if isinstance(found, discord.Thread):
            return found
        try:
            fetched = await self.client.fetch_channel(int(thread_id))
        except (discord.NotFound, discord.Forbidden):
            return None
        return fetched if isinstance(fetched, discord.Thread) else None

    def _partial(self, link: MessageLink) -> discord.PartialMessage:
        channel: Any = self._messageable(link.channel)
        message: discord.PartialMessage = channel.get_partial_message(int(link.message_id))
        return message

    def _results_channel(self, gen: Generation, notice: Notice) -> str:
        """Where a generation's image and failure go: its thread, else the card's channel."""
        thread = notice.link("thread")
        if thread is not None:
            return thread.channel
        card = notice.link("card")
        return card.channel if card is not None else gen.place.channel

    async def _card(self, gen: Generation, status: str, state: str) -> discord.Embed:
        fingerprint = None
        if self.fingerprint is not None:
            try:
                fingerprint = await self.fingerprint(gen)
            except Exception:  # the fingerprint is decoration; never fail a notice for it
                log.warning("no fingerprint for %s", gen.id)
        return render.card(gen, status, state=state, fingerprint=fingerprint)

    async def _edit_card(
        self, gen: Generation, notice: Notice, status: str, state: str, *, final: bool = False
    ) -> None:
        """Edit the card; one edit at a time per card, and no progress after a final state
        (a progress edit still waiting for the lock is dropped)."""
        link = notice.link("card")
        if link is None:
            return
        if final:
            self._final[gen.id] = None
            while len(self._final) > FINAL_MEMORY:
                self._final.pop(next(iter(self._final)))
        lock = self._locks.setdefault(gen.id, asyncio.Lock())
        async with lock:
            if not final and gen.id in self._final:
                return
            embed = await self._card(gen, status, state)
            try:
                await self._partial(link).edit(embed=embed, allowed_mentions=render.NO_PINGS)
            except discord.NotFound:
                log.info("card of %s is gone; not edited", gen.id)
            self._edited[gen.id] = self.clock()
        if final:
            self._locks.pop(gen.id, None)
            self._edited.pop(gen.id, None)

    # --- events ------------------------------------------------------------------------

    async def _accepted(self, gen: Generation, notice: Notice) -> list[MessageLink]:
        if notice.link("card") is not None:
            return []
        place = gen.place
        embed = await self._card(gen, "Accepted", "accepted")
        links: list[MessageLink] = []
        thread: discord.Thread | None = None
        if place.thread is not None:
            thread = await self._thread(place.thread)
        if place.card_message is not None:
            card_link = MessageLink(PLATFORM, place.channel, place.card_message, gen.id, "card")
            await self._partial(card_link).edit(
                content=None, embed=embed, allowed_mentions=render.NO_PINGS
            )
            card_channel, card_id = place.channel, int(place.card_message)
        else:
            where = self._messageable(str(thread.id) if thread is not None else place.channel)
            sent = await where.send(embed=embed, allowed_mentions=render.NO_PINGS)
            card_channel, card_id = str(sent.channel.id), sent.id
        links.append(MessageLink(PLATFORM, card_channel, str(card_id), gen.id, "card"))
        self._edited[gen.id] = self.clock()
        if thread is None:
            thread = await self._start_thread(gen, card_channel, card_id)
        if thread is not None:
            links.append(MessageLink(PLATFORM, str(thread.id), str(thread.id), gen.id, "thread"))
        return links

    async def _start_thread(
        self, gen: Generation, channel_id: str, message_id: int
    ) -> discord.Thread | None:
        """A thread from the card; None in DMs or where the bot may not make one."""
        channel: object = self.client.get_channel(int(channel_id))
        if channel is None:  # not in this client's cache (a process holding no shard): ask
            try:
                channel = await self.client.fetch_channel(int(channel_id))
            except (discord.NotFound, discord.Forbidden):
                return None
        if not isinstance(channel, discord.TextChannel):
            return None
        name = render.cut(gen.spec.brief.replace("\n", " ") or "tmbot", THREAD_NAME_MAX)
        try:
            return await channel.get_partial_message(message_id).create_thread(
                name=name, reason=f"tmbot result {gen.id}"
            )
        except discord.Forbidden:
            return None
        except discord.HTTPException as exc:
            if exc.code == 160004:  # a thread has already been created for this message
                found = await self._thread(str(message_id))
                return found
            raise

    async def _progress(self, gen: Generation, notice: Notice, status: str, state: str) -> None:
        """Edit now, or — within ``edit_interval`` of the last edit — once the interval has
        passed, with the newest progress by then (a final edit cancels it)."""
        last = self._edited.get(gen.id)
        wait = 0.0 if last is None else self.edit_interval - (self.clock() - last)
        if wait <= 0:
            await self._edit_card(gen, notice, status, state)
            return
        self._pending[gen.id] = (gen, notice, status, state)
        if gen.id not in self._timers:
            self._timers[gen.id] = asyncio.create_task(self._later(gen.id, wait))

    async def _later(self, generation_id: str, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
            pending = self._pending.pop(generation_id, None)
            if pending is not None:
                await self._edit_card(*pending)
        except discord.HTTPException as exc:  # a later edit shows the state anyway
            log.warning("progress edit of %s failed: %s", generation_id, exc.status)
        finally:
            self._timers.pop(generation_id, None)

    @staticmethod
    def _generating(gen: Generation, fraction: float) -> str:
        about = f" — about {gen.estimate_seconds:.0f} s" if gen.estimate_seconds else ""
        return f"Generating {render.progress_bar(fraction)}{about}"

    async def _tick(self, gen: Generation, notice: Notice) -> None:
        """Move the progress bar along the provider's estimate (through the coalescer)."""
        try:
            total = self.real_seconds(gen.estimate_seconds or 0.0)
            start = self.clock()
            for step in PROGRESS_STEPS:
                delay = start + step * total - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._progress(gen, notice, self._generating(gen, step), "started")
        except discord.HTTPException as exc:
            log.warning("progress edit of %s failed: %s", gen.id, exc.status)
        finally:
            self._tickers.pop(gen.id, None)

    def _settle(self, generation_id: str) -> None:
        """A final state: no progress edit may follow it."""
        self._pending.pop(generation_id, None)
        for tasks in (self._timers, self._tickers):
            task = tasks.pop(generation_id, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        """Cancel waiting progress edits (the client is closing)."""
        timers = [*self._timers.values(), *self._tickers.values()]
        self._timers.clear()
        self._tickers.clear()
        self._pending.clear()
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)

    async def _delivered(self, event: Delivered, notice: Notice) -> list[MessageLink]:
        gen = event.generation
        made: list[MessageLink] = []
        if notice.link("image") is None:
            channel = self._messageable(self._results_channel(gen, notice))
            sent = await self._send_image(event, channel)
            link = MessageLink(PLATFORM, str(sent.channel.id), str(sent.id), gen.id, "image")
            log.info("posted the image of %s in channel %s", gen.id, sent.channel.id)
            await notice.record(link)
            made.append(link)
        self._settle(gen.id)
        await self._edit_card(gen, notice, "Done", "delivered", final=True)
        return made

    async def _send_image(
        self, event: Delivered, channel: discord.abc.Messageable
    ) -> discord.Message:
        """The image as a file, re-encoded when it is over the upload limit (the guild's, or
        a smaller one Discord answers 413 to), else a link with its expiry."""
        gen = event.generation
        caption = render.image_caption(gen, event.credits_used, event.credits_remaining)
        limit = self._upload_limit(channel)
        data: bytes | None = event.image
        filename = event.filename
        note = ""
        for _ in range(MAX_UPLOAD_TRIES):
            if data is not None and len(data) > limit:
                fitted = await images.fit(event.image, limit)
                data = fitted[0] if fitted is not None else None
                if fitted is not None:
                    filename = event.filename.rsplit(".", 1)[0] + "." + fitted[1]
                    note = "\n-# Re-encoded to fit Discord's upload limit."
            if data is None:
                break
            try:
                return await channel.send(
                    render.text(caption + note),
                    file=discord.File(io.BytesIO(data), filename=filename),
                    nonce=nonce_for(gen.id),
                    allowed_mentions=render.NO_PINGS,
                    view=result_buttons(gen.id),
                )
            except discord.HTTPException as exc:
                if exc.status != 413 and exc.code != 40005:
                    raise
                limit = min(limit, len(data)) * 3 // 4  # Discord's limit is lower: shrink
        return await channel.send(
            render.text(caption + "\n" + self._too_big(gen)),
            nonce=nonce_for(gen.id),
            allowed_mentions=render.NO_PINGS,
            view=result_buttons(gen.id),
        )

    def _upload_limit(self, channel: discord.abc.Messageable) -> int:
        guild = getattr(channel, "guild", None)
        if isinstance(guild, discord.Guild):
            return guild.filesize_limit
        return images.DEFAULT_LIMIT

    @staticmethod
    def _too_big(gen: Generation) -> str:
        if gen.image_url is None:
            return "The image is too large to upload here, and no link to it is left."
        expiry = f" (the link expires <t:{int(gen.expires_at)}:R>)" if gen.expires_at else ""
        return f"The image is too large to upload here; download it from {gen.image_url}{expiry}."

    async def _failed(self, gen: Generation, notice: Notice, reason: str) -> None:
        self._settle(gen.id)
        await self._edit_card(gen, notice, f"Failed — {reason}", "failed", final=True)
        channel = self._messageable(self._results_channel(gen, notice))
        await channel.send(
            render.text(f"❌ That image could not be made: {reason}"),
            nonce=nonce_for(gen.id),
            allowed_mentions=render.NO_PINGS,
        )

    async def _deleted(self, event: Deleted, notice: Notice) -> None:
        gen = event.generation
        self._settle(gen.id)
        image = notice.link("image")
        if image is not None:
            with contextlib.suppress(discord.NotFound):
                await self._partial(image).delete()
        await self._edit_card(gen, notice, f"Deleted by {event.by_label}", "deleted", final=True)
