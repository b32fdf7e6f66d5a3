"""Time, with a scale knob.

Every duration the core reasons about (estimates, Retry-After, rate windows, deadlines) is in
*provider seconds*. A :class:`Clock` turns them into real waiting time. ``scale`` > 1 makes
provider time run faster than the wall clock, so tests and the demo keep every limit's shape
while running fast. The simulator uses the same class, so both sides agree when they are
given the same scale.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Clock:
    scale: float = 1.0
    _origin_mono: float = field(default_factory=time.monotonic, repr=False)
    _origin_wall: float = field(default_factory=time.time, repr=False)

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("time scale must be positive")

    def monotonic(self) -> float:
        """Provider seconds since an arbitrary origin; never goes backwards."""
        return (time.monotonic() - self._origin_mono) * self.scale

    def wall(self) -> float:
        """Provider-time epoch seconds: real now at scale 1, running ``scale`` times faster."""
        return self._origin_wall + (time.monotonic() - self._origin_mono) * self.scale

    def rescaled(self, scale: float) -> Clock:
        """A clock running at ``scale`` that continues this one's provider time without a
        jump (the simulator's runtime ``time_scale`` change)."""
        real_now = time.monotonic()
        provider_mono = (real_now - self._origin_mono) * self.scale
        return Clock(
            scale=scale,
            _origin_mono=real_now - provider_mono / scale,
            _origin_wall=self._origin_wall,
        )

    def real_seconds(self, provider_seconds: float) -> float:
        return max(0.0, provider_seconds) / self.scale

    async def sleep(self, provider_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(provider_seconds))
