"""The simulator in a process of its own, with a clock the benchmark can share.

``python -m benchmarks.simhost --config JSON --result PATH`` serves
:class:`tmbot.simulator.Simulator` on 127.0.0.1 (a free port) and prints, like ``tmbot sim``::

    tmbot simulator listening on http://127.0.0.1:PORT (time scale N)
    clock {"wall": …, "mono": …, "scale": N}

The second line maps the simulator's provider-time epoch (``Simulator.clock.wall()``, the
epoch of ``SimStats.completions``) to ``time.monotonic()``, which on Linux is one clock for
every process: ``sim_wall(m) = wall + (m - mono) * scale``. So another process can place
its own monotonic timestamps on the simulator's time line exactly, without a network round
trip in the estimate.

It serves until SIGTERM/SIGINT or until its stdin closes, then writes a JSON summary of its
own event-loop lag, CPU time and RSS to ``--result``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from benchmarks.probes import LagProbe, peak_rss
from tmbot.simulator import SimConfig, Simulator


async def serve(config: SimConfig) -> dict[str, object]:
    sim = Simulator(config)
    await sim.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:  # the parent died or closed our stdin: stop
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    probe = LagProbe()
    probe.start()
    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    started = time.monotonic()
    clock = sim.clock
    mono, wall = time.monotonic(), clock.wall()
    sys.stdout.write(
        f"tmbot simulator listening on {sim.base_url} (time scale {config.time_scale:g})\n"
        + "clock "
        + json.dumps({"wall": wall, "mono": mono, "scale": clock.scale})
        + "\n"
    )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        lag = await probe.stop()
        cpu = proc.cpu_times()
        elapsed = time.monotonic() - started
        busy = (cpu.user - cpu0.user) + (cpu.system - cpu0.system)
        summary = {
            "lag": lag,
            "cpu_seconds": busy,
            "elapsed": elapsed,
            "cpu_percent": 100 * busy / elapsed if elapsed > 0 else None,
            "peak_rss": peak_rss(),
        }
        await sim.stop()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simhost")
    parser.add_argument("--config", default="{}", help="SimConfig fields as a JSON object")
    parser.add_argument("--result", type=Path, default=None, help="where to write the summary")
    args = parser.parse_args()
    config = SimConfig(**json.loads(args.config))
    summary = asyncio.run(serve(config))
    if args.result is not None:
        args.result.write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
