"""Series completion: a series is quiet once ``quiet_period_s`` passed without a new instance.

``touch(series_uid)`` only records the time in memory (cheap enough for every received instance);
one periodic apscheduler job sweeps the records and calls ``on_quiet(series_uid)`` for each series
that has gone quiet. The sweep runs every ``quiet_period_s / 5`` (between 0.05 s and 1 s), so a
series completes at most that much later than its quiet period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timezone

from apscheduler.schedulers.background import BackgroundScheduler


class CompletionTimers:
    """Calls ``on_quiet(series_uid)`` once ``quiet_period_s`` passed without ``touch(series_uid)``."""

    def __init__(self, quiet_period_s: float, on_quiet: Callable[[str], None]) -> None:
        self.quiet_period_s = quiet_period_s
        self.sweep_interval_s = max(0.05, min(1.0, quiet_period_s / 5.0))
        self._on_quiet = on_quiet
        self._last_touch: dict[str, float] = {}
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone=timezone.utc, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        )

    def start(self) -> None:
        self._scheduler.add_job(self.sweep, "interval", seconds=self.sweep_interval_s, id="completion-sweep")
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def touch(self, series_uid: str, at: float | None = None) -> None:
        """(Re)start the series' quiet timer."""
        with self._lock:
            self._last_touch[series_uid] = time.monotonic() if at is None else at

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._last_touch)

    def sweep(self, now: float | None = None) -> list[str]:
        """Fire ``on_quiet`` for every series quiet for ``quiet_period_s``; returns them."""
        now = time.monotonic() if now is None else now
        with self._lock:
            quiet = [uid for uid, last in self._last_touch.items() if now - last >= self.quiet_period_s]
            for uid in quiet:
                del self._last_touch[uid]
        for uid in quiet:
            self._on_quiet(uid)  # may touch() again if the series is not quiet in the index
        return quiet

    def every(self, interval_s: float, func: Callable[[], None], name: str) -> None:
        """A periodic housekeeping task (retention)."""
        self._scheduler.add_job(func, "interval", seconds=interval_s, id=f"every:{name}", replace_existing=True)
