"""The terminal front end: one command per line, one printed line per event.

Lines are the same text as after ``/taste``. ``@bob <command>`` acts as bob; ``regenerate ID``
(or ``🔁 ID``) makes another of a result, paid by whoever typed it; ``refine ID <words and
flags>`` makes a changed one; ``delete ID`` (or ``🗑 ID``) deletes one (its requester or an
admin), which here removes the saved file. Images are saved as ``DIR/tmbot-<id>.png``; the
file is the console's "message" for an image, linked like a chat message, so an image is
never written twice (not even after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

from tmbot import (
    Accepted,
    Actor,
    Deleted,
    Delivered,
    Engine,
    Event,
    Failed,
    GenerationAccepted,
    KeyFormRequested,
    MessageLink,
    Notice,
    Place,
    Queued,
    Reply,
    Started,
    TmbotError,
    clean,
    describe_spec,
    priced,
    printable,
    render,
    tenant_of,
)

log = logging.getLogger(__name__)

PLATFORM = "console"
TENANT = tenant_of(PLATFORM, "local")
CHANNEL = "console"
PLACE = Place(platform=PLATFORM, channel=CHANNEL)

Write = Callable[[str], None]


def image_path(out_dir: Path, generation_id: str) -> Path:
    """Where the console keeps a generation's image (its one "message")."""
    return out_dir / f"tmbot-{generation_id}.png"


def render_error(err: TmbotError) -> str:
    """The one place where the console turns an error into text."""
    return f"error: {err.user_message}"


def _print(line: str) -> None:
    sys.stdout.write(printable(line) + "\n")  # never a control character to the terminal
    sys.stdout.flush()


class ConsoleNotifier:
    """Prints each event; saves delivered images into ``out_dir`` (the file is the image's
    message: its link says it was saved, so it is never written twice)."""

    def __init__(self, out_dir: Path, write: Write = _print) -> None:
        self.out_dir = out_dir
        self.write = write

    def path_for(self, generation_id: str) -> Path:
        return image_path(self.out_dir, generation_id)

    async def notify(self, event: Event, notice: Notice) -> list[MessageLink]:
        gen = event.generation
        tag = f"[{gen.id}]"
        match event:
            case Accepted():
                pass  # the accepted line is the reply to the command
            case Queued(position=position, eta_seconds=eta):
                about = f", starts in about {eta:.0f} s" if eta else ""
                self.write(f"{tag} queued: position {position}{about}")
            case Started():
                about = f", about {gen.estimate_seconds:g} s" if gen.estimate_seconds else ""
                self.write(f"{tag} started (task {gen.task_id}{about})")
            case Delivered():
                return await self._deliver(event, notice)
            case Failed(reason=reason):
                self.write(f"{tag} failed: {reason}")
            case Deleted():
                removed = await asyncio.to_thread(_unlink, self.path_for(gen.id))
                what = ": removed its file" if removed else ""
                self.write(f"{tag} deleted by {event.by_label}{what}")
        return []

    async def _deliver(self, event: Delivered, notice: Notice) -> list[MessageLink]:
        gen = event.generation
        path = self.path_for(gen.id)
        if notice.link("image") is not None:
            self.write(f"[{gen.id}] delivered: {path} (already saved)")
            return []
        await asyncio.to_thread(self._save, path, event.image)
        link = MessageLink(PLATFORM, CHANNEL, str(path), gen.id, kind="image")
        await notice.record(link)
        credits = ""
        if event.credits_used is not None:
            used = f"{event.credits_used:g}"
            credits = (
                f", {used} credits" if priced(gen.spec.provider) else f", reported cost {used}"
            )
        if event.credits_remaining is not None:
            credits += f", {event.credits_remaining:g} left"
        self.write(f"[{gen.id}] delivered: {path} ({event.width}×{event.height}{credits})")
        return [link]

    def _save(self, path: Path, image: bytes) -> None:
        """Write atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(image)
        os.replace(tmp, path)


class Console:
    def __init__(
        self,
        engine: Engine,
        *,
        user: str,
        admins: Iterable[str] = (),
        write: Write = _print,
    ) -> None:
        self.engine = engine
        self.user = user
        self.admins = frozenset(admin.casefold() for admin in admins)
        self.write = write

    def actor(self, name: str) -> Actor:
        user_id = name.casefold()  # `@Bob` and `@bob` are one person, as budget targets are
        return Actor(
            platform=PLATFORM,
            tenant=TENANT,
            user_id=user_id,
            is_admin=user_id in self.admins,
            display_name=name,
        )

    async def handle_line(self, line: str) -> Reply | None:
        text = clean(line)
        if not line.strip() or text.startswith("#"):
            return None
        if not text:  # only invisible characters: the grammar says why that is refused
            text = line.strip()
        name = self.user
        if text.startswith("@"):
            head, _, rest = text.partition(" ")
            name, text = head[1:] or self.user, rest.strip()
        actor = self.actor(name)
        try:
            reply = await self._dispatch(actor, text)
        except TmbotError as err:
            self.write(render_error(err))
            return None
        self._show(reply)
        return reply

    async def _dispatch(self, actor: Actor, text: str) -> Reply:
        """The reaction emoji stand for what a chat platform's reactions do; everything else
        (`regenerate ID`, `refine ID …`, `delete ID` included) is the grammar's."""
        word, _, rest = text.partition(" ")
        target = rest.strip()
        if word == "🔁" and target and " " not in target:
            return await self.engine.regenerate(actor, target)
        if word in ("🗑", "🗑️", "❌") and target and " " not in target:
            return await self.engine.delete(actor, target)
        return await self.engine.execute(actor, text, PLACE)

    def _show(self, reply: Reply) -> None:
        match reply:
            case KeyFormRequested():
                self.write("The console has no private form: type `key <your key>` instead.")
            case GenerationAccepted(generation=gen, duplicate=duplicate):
                again = f", another of {gen.regenerated_from}" if gen.regenerated_from else ""
                seen = " (already asked for a moment ago)" if duplicate else ""
                self.write(f"[{gen.id}] accepted: {describe_spec(gen.spec)}{again}{seen}")
            case _:
                self.write(render(reply))

    async def run(self, lines: AsyncIterator[str], settled: Callable[[], Awaitable[None]]) -> int:
        """Handle every line, then wait until every accepted generation has ended and its
        events have been shown (``settled``)."""
        async for line in lines:
            if line.strip().lower() in ("quit", "exit"):
                break
            await self.handle_line(line)
        await settled()
        return 0


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


async def stdin_lines() -> AsyncIterator[str]:
    """Lines from stdin without blocking the loop (a daemon thread does the reading, so a
    terminal left open never holds up shutdown)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line
