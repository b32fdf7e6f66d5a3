"""Running generations within each key's limits: the scheduler and its helpers.

- :mod:`.scheduler` — per-key lanes, the run loop, retries, deadlines, downloads
- :mod:`.ratelimit` — one request budget per key shared by creates and polls
- :mod:`.fairqueue` — the concurrency cap, fair across the users sharing a key
- :mod:`.polling` — when to look at a running task (learned from what was seen)
"""

from tmbot.scheduling.scheduler import (
    Job,
    JobHooks,
    KeyLane,
    Scheduler,
    SchedulerSettings,
    worth_reporting,
)

__all__ = ["Job", "JobHooks", "KeyLane", "Scheduler", "SchedulerSettings", "worth_reporting"]
