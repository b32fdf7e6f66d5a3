"""The garbage collector's settings for a long-running bot process.

CPython's cyclic collector walks every tracked object of a generation when it runs. In the
benchmark's in-flight run (1,000 generations at the provider) it took a fifth of the bot's
CPU, and each full collection stopped the event loop for 0.2-0.4 s (on a loaded machine),
long enough to show in the loop-lag figure. :func:`settle` moves what exists at start-up
(modules, classes, functions: never garbage) out of the collector's way for good and makes
collections rarer, so each does its walk for more allocations.
"""

from __future__ import annotations

import gc
from typing import Final

#: allocations (net of frees) between young collections; a full collection after
#: 20 x 20 of them. CPython's defaults are 700, 10, 10. Measured in the in-flight run:
#: collections went from 392 to 34 and their time from 2.3 s to 1.1 s.
THRESHOLDS: Final = (5000, 20, 20)


def settle() -> None:
    """Call once, in a process that will run for long (never in a test process: what is
    frozen is never collected), after its imports and before its work."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
