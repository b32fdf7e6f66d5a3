"""A local stand-in for both image APIs: The Taste Machine and Vtrix's nano_banana_2.

One aiohttp server (``Simulator``, or ``tmbot sim`` through :func:`run_server`) answers at the
real paths with the real shapes of PROVIDERS.md, so a provider client pointed at
``Simulator.base_url`` cannot tell the difference. Never imported by the engine.

Paths
    ``POST /api/v1/generate``, ``GET /api/v1/generate?task_id=ID``  The Taste Machine
    ``POST /model/v1/generation``, ``GET /model/v1/generation/task/{id}``  Vtrix
    ``GET /cdn/{token}.png``  finished images (no auth, no rate limit)
    ``GET /_sim/stats``; ``GET /_sim/tasks`` (each task's brief, parameters and reference
    image URLs, by key id); ``POST /_sim/config`` ``{field: value, …}``;
    ``POST /_sim/keys`` ``{"key": …, "credits": N}``; ``POST /_sim/burst`` ``{"key": …|null,
    "count": N}``  controls for tests and the demo

Key conventions (substring matches on the raw key, case-sensitive)
    The Taste Machine: any key matching ``tm_(live|test)_…`` (the pattern in
    ``tmbot.capabilities``) works and starts with ``default_credits`` (1000).
    ``revoked`` in it: 401 always. ``broke``: 0 credits, so every create is a 402.
    ``low``: 25 credits (two pro images, then 402). Anything else: 401.
    Vtrix: any bearer token of 20+ characters (``[A-Za-z0-9][A-Za-z0-9_.-]{19,199}``) works.
    ``revoked``: 401. ``noperm``: 403 permission denied on every request. ``broke``: 403
    ``insufficient balance`` on create (polls still work). Vtrix has no credits, but a
    balance set to 0 or less with ``set_credits`` also makes creates 403.
    A missing header or another scheme than ``Bearer``: 401 on both.

Credits (The Taste Machine)
    The cost (``tmbot.capabilities``, model x resolution) is checked and charged on create
    (402 ``{"error": "insufficient credits", "required": N, "available": M}``) and refunded
    when the task fails. Refunds land lazily: at the key's next request or ``stats()``.

Limits (per key and provider)
    A sliding window of ``*_rpm`` requests per ``rate_window_seconds``: creates and polls
    together, whatever their answer, except 429s (and the injected 500s/504s, which never
    reach the key). At most ``*_concurrency`` unfinished tasks. Past either: 429 with an
    integer ``Retry-After`` (provider seconds, ceil, >= 1): when the oldest counted request
    leaves the window, or when the soonest running task ends.

Task life
    Duration = estimate x uniform(1 - spread, 1 + spread), the estimate being
    ``estimate_seconds`` (nano-banana-pro 2k) scaled by the model and resolution factors in
    :mod:`tmbot.simulator.config`. The Taste Machine says ``queued`` for the first 10 %, then
    ``processing``, then ``complete`` or ``failed``. Vtrix says ``in_progress`` (some tasks say
    ``pending`` early or ``processing`` later), then ``completed`` or ``failed``; a Vtrix task
    whose duration is at most 1 provider second is answered ``completed`` in the create
    answer itself. Images expire ``image_ttl_seconds`` after completion: 410 Gone (Taste
    Machine) or 403 with an XML ``AccessDenied … expired`` body (Vtrix, like a signed URL).
    Nothing runs in the background: every status is computed from timestamps on request.

Faults (each a probability from one ``random.Random(seed)``)
    ``server_error_rate``: 500 before anything else (JSON error body).
    ``timeout_rate``: hang ``hang_seconds`` real seconds (released early by ``stop()``),
    then 504 with an HTML gateway page.
    ``malformed_rate``: a 2xx answer (after its work is done: a create still creates the
    task) replaced by one of: an HTML page with 200, the JSON without its id/status fields,
    or truncated JSON.
    ``task_failure_rate``: the task ends ``failed``; the error shape varies per task
    (Taste Machine: string or ``{"message": …}``; Vtrix: ``{"code", "error_message"}``,
    ``{"code", "message"}`` or a plain string, codes 5001095-5001098).
    ``burst_429(key, count)``: the next ``count`` authenticated API requests (of that key, or
    of any key) answer 429 with ``Retry-After: 2``.

Time runs on :class:`tmbot.clock.Clock` at ``time_scale``: ``Simulator.clock.wall()`` is the
epoch of ``SimStats.completions`` and of ``expires_at``. Stats are keyed by :func:`key_id`,
never by a raw key, and the access log is off so no key ever reaches a log.
"""

from tmbot.simulator.config import SimConfig
from tmbot.simulator.server import Simulator, run_server
from tmbot.simulator.stats import KeyStats, SimStats, key_id

__all__ = ["KeyStats", "SimConfig", "SimStats", "Simulator", "key_id", "run_server"]
