"""Series completion: a one-shot apscheduler timer per series, re-armed by every new instance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.background import BackgroundScheduler


class CompletionTimers:
    """Calls ``on_quiet(series_uid)`` once ``quiet_period_s`` passed without ``touch(series_uid)``."""

    def __init__(self, quiet_period_s: float, on_quiet: Callable[[str], None]) -> None:
        self.quiet_period_s = quiet_period_s
        self._on_quiet = on_quiet
        self._scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"misfire_grace_time": None, "coalesce": True})

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def touch(self, series_uid: str) -> None:
        """(Re)start the series' quiet timer."""
        run_at = datetime.now(timezone.utc) + timedelta(seconds=self.quiet_period_s)
        self._scheduler.add_job(
            self._on_quiet, "date", run_date=run_at, args=[series_uid], id=f"quiet:{series_uid}",
            replace_existing=True,
        )

    def every(self, interval_s: float, func: Callable[[], None], name: str) -> None:
        """A periodic housekeeping task (retention)."""
        self._scheduler.add_job(func, "interval", seconds=interval_s, id=f"every:{name}", replace_existing=True)
