"""The scheduler benchmark: the real engine against the naive poller, on the simulator.

``python -m benchmarks.run`` (``make bench``) runs every scenario twice, once with the real
:class:`tmbot.engine.Engine` (SQLite store, vault, Taste Machine client over HTTP, scheduler)
and once with the naive baseline of :mod:`benchmarks.baseline`, each against a fresh
simulator in its own process, and prints requests per image, 429s, delivery overhead,
throughput against the theoretical bound, busy slots, RSS and event-loop lag.

Modules: :mod:`.scenarios` (what runs), :mod:`.simhost` (the simulator process),
:mod:`.worker` with :mod:`.ours` and :mod:`.baseline` (the bot processes), :mod:`.probes`
(loop lag, RSS), :mod:`.metrics` (numbers from traces and simulator stats), :mod:`.report`
(tables, targets) and :mod:`.run` (the command).
"""
