"""The terminal front end: one command per line, one printed line per event.

Lines are the same text as after ``/taste``. ``@bob <command>`` acts as bob; ``regenerate ID``
(or ``🔁 ID``) makes another of a result, paid by whoever typed it; ``delete ID`` (or
``🗑 ID``) deletes one (its requester or an admin), which here removes the saved file. Images are
saved as ``DIR/tmbot-<id>.png``; an image whose file already exists is not written again, which
makes delivery idempotent across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from tmbot import commands as cmds
from tmbot.cleantext import clean, printable
from tmbot.domain import Actor, Place
from tmbot.engine import Engine, Reply
from tmbot.errors import ParseError, TmbotError
from tmbot.events import Delivered, Event, Failed, Queued, Started
from tmbot.funds import priced
from tmbot.texts import describe_spec

log = logging.getLogger(__name__)

PLATFORM = "console"
TENANT = "local"
PLACE = Place(platform=PLATFORM, channel="console")

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
    """Prints each event; saves delivered images into ``out_dir``."""

    def __init__(self, out_dir: Path, write: Write = _print) -> None:
        self.out_dir = out_dir
        self.write = write

    def path_for(self, generation_id: str) -> Path:
        return image_path(self.out_dir, generation_id)

    async def notify(self, event: Event) -> None:
        gen = event.generation
        tag = f"[{gen.id}]"
        match event:
            case Queued(position=position, eta_seconds=eta):
                about = f", starts in about {eta:.0f} s" if eta else ""
                self.write(f"{tag} queued: position {position}{about}")
            case Started():
                about = f", about {gen.estimate_seconds:g} s" if gen.estimate_seconds else ""
                self.write(f"{tag} started (task {gen.task_id}{about})")
            case Delivered():
                path = self.path_for(gen.id)
                fresh = await asyncio.to_thread(self._save, path, event.image)
                credits = ""
                is_priced = priced(gen.spec.provider)
                if event.credits_used is not None:
                    used = f"{event.credits_used:g}"
                    credits = f", {used} credits" if is_priced else f", reported cost {used}"
                if event.credits_remaining is not None:
                    credits += f", {event.credits_remaining:g} left"
                again = "" if fresh else " (already saved)"
                self.write(
                    f"{tag} delivered: {path} ({event.width}×{event.height}{credits}){again}"
                )
            case Failed(reason=reason):
                self.write(f"{tag} failed: {reason}")

    def _save(self, path: Path, image: bytes) -> bool:
        """Write atomically; False when the file was already there (delivered before)."""
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(image)
        os.replace(tmp, path)
        return True


class Console:
    def __init__(
        self,
        engine: Engine,
        *,
        user: str,
        admins: Iterable[str] = (),
        write: Write = _print,
        out_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.user = user
        self.admins = frozenset(admin.casefold() for admin in admins)
        self.write = write
        #: where the notifier saves images: a deleted result's file is removed from it
        self.out_dir = out_dir

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
        word, _, rest = text.partition(" ")
        target = rest.strip().lower()
        if word == "🔁" and target and " " not in target:
            gen = await self.engine.regenerate(actor, target)
            return Reply(f"Accepted {describe_spec(gen.spec)}, another of {target}.", gen)
        if word in ("🗑", "🗑️", "❌") and target and " " not in target:
            return await self._delete(actor, target)
        try:
            command = cmds.parse(text)
        except ParseError:
            command = None  # the engine says what is wrong
        if isinstance(command, cmds.Delete):
            return await self._delete(actor, command.generation_id)
        return await self.engine.execute(actor, text, PLACE)

    async def _delete(self, actor: Actor, generation_id: str) -> Reply:
        links = await self.engine.delete(actor, generation_id)
        # The console's "message" is the saved file; a chat adapter removes the links instead.
        removed = False
        if self.out_dir is not None:
            removed = await asyncio.to_thread(_unlink, image_path(self.out_dir, generation_id))
        what = " and removed its file" if removed else ""
        extra = f" ({len(links)} message(s) to remove)" if links else ""
        return Reply(f"Deleted {generation_id}{what}{extra}.")

    def _show(self, reply: Reply) -> None:
        if reply.key_form is not None:
            self.write("The console has no private form: type `key <your key>` instead.")
            return
        if reply.generation is not None:
            self.write(f"[{reply.generation.id}] accepted: {reply.text.removeprefix('Accepted ')}")
            return
        self.write(reply.text)

    async def run(self, lines: AsyncIterator[str]) -> int:
        """Handle every line, then wait until every accepted generation has ended."""
        async for line in lines:
            if line.strip().lower() in ("quit", "exit"):
                break
            await self.handle_line(line)
        await self.engine.wait_idle()
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
