"""Stopping on SIGTERM or SIGINT without losing work.

:class:`Stopper` turns the signals into an event. A front end stops taking new requests when
it is set, lets what is running finish for up to ``TMBOT_SHUTDOWN_GRACE`` seconds, then closes
the runtime: everything unfinished is stored, so the next start resumes it (tasks at the
provider are polled again, never re-sent; a finished image not yet posted is posted once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


class Stopper:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signal: str | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop, sig.name)

    def stop(self, reason: str = "asked") -> None:
        if not self.event.is_set():
            log.warning(
                "stopping (%s): no new requests; unfinished work resumes at next start", reason
            )
            self.signal = reason
            self.event.set()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    async def lines(self, source: AsyncIterator[str]) -> AsyncIterator[str]:
        """``source``'s lines until it ends or the stop comes."""
        stop = asyncio.ensure_future(self.event.wait())
        try:
            while True:
                line = asyncio.ensure_future(anext(source))
                done, _ = await asyncio.wait({line, stop}, return_when=asyncio.FIRST_COMPLETED)
                if line not in done:
                    line.cancel()
                    return
                try:
                    yield line.result()
                except StopAsyncIteration:
                    return
        finally:
            stop.cancel()

    async def settle(self, settled: Callable[[], Awaitable[None]], grace: float) -> None:
        """Wait for ``settled``; once stopping, for at most ``grace`` seconds more."""
        waiting = asyncio.ensure_future(settled())
        try:
            if not self.stopping:
                stop = asyncio.ensure_future(self.event.wait())
                await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
            if not waiting.done():
                await asyncio.wait({waiting}, timeout=grace)
        finally:
            waiting.cancel()
