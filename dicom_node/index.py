"""The spool index: a small SQLite database (WAL) of studies, series, instances, jobs and sends.

It is the node's only state. Every change is one short transaction, so a crash at any point leaves
a consistent index from which a restart resumes: series still receiving get a new quiet timer,
queued or interrupted jobs are processed, pending sends are retried at their persisted time.
Several processes may open it at once (the running node and the ``bianque`` admin commands).

Job states: ``queued`` -> ``processing`` -> ``sending`` -> ``done`` | ``failed``.
Send states (one row per job and destination): ``pending`` -> ``done`` | ``failed``.
No patient names, IDs or birth dates are stored here.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from .headers import InstanceHeader

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    first_received_at REAL NOT NULL,
    last_received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid),
    modality TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    series_number INTEGER,
    state TEXT NOT NULL DEFAULT 'receiving',
    last_received_at REAL NOT NULL,
    completed_at REAL
);
CREATE INDEX IF NOT EXISTS series_by_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid),
    study_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_number INTEGER,
    transfer_syntax_uid TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_series ON instances(series_uid);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL DEFAULT 'study',
    study_uid TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_status TEXT,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_by_study ON jobs(study_uid);
CREATE TABLE IF NOT EXISTS outputs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outputs_by_job ON outputs(job_id);
CREATE TABLE IF NOT EXISTS sends (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    destination TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempt INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_status TEXT,
    last_error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job_id, destination)
);
"""

ACTIVE_JOB_STATES = ("queued", "processing", "sending")


def may_change_result(modality: str) -> bool:
    """Whether a newly completed series of this modality can change a study's analysis: MR images (or a
    header without Modality). Other series (SEG, SR, report images, presentation states: our own results
    routed back by an auto-routing PACS, or anyone's) are stored but start no new version of a study that
    was analysed before; a study's first series always gets its job (and its "no sagittal T2" outcome)."""
    return (modality or "").strip().upper() in ("MR", "")


_Row = TypeVar("_Row")


@dataclass(frozen=True)
class StoreResult:
    new_instance: bool
    new_series: bool
    reopened_series: bool
    """A late instance arrived for a series that was already complete."""


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    study_uid: str
    modality: str
    description: str
    series_number: int | None
    state: str
    last_received_at: float
    completed_at: float | None
    instance_count: int


@dataclass(frozen=True)
class InstanceRow:
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class_uid: str
    instance_number: int | None
    transfer_syntax_uid: str
    path: str


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    study_uid: str | None
    version: int
    state: str
    stage: str
    attempt: int
    next_attempt_at: float
    last_status: str | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class SendRow:
    job_id: int
    destination: str
    state: str
    attempt: int
    next_attempt_at: float
    last_status: str | None
    last_error: str | None
    updated_at: float


class SpoolIndex:
    """Thread-safe access to the index database at ``path`` (created if missing)."""

    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._synchronous = "FULL"
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self, synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
        """One transaction. ``synchronous='NORMAL'`` (WAL): the commit survives a crash of the process
        but may be rolled back by a power loss (the database stays consistent); FULL also survives that.
        A FULL commit syncs the WAL, with every NORMAL commit before it."""
        with self._lock:
            if synchronous != self._synchronous:
                self._conn.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")
                self._synchronous = synchronous
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    # -- receive -----------------------------------------------------------------------------------
    def has_instance(self, sop_uid: str) -> bool:
        return bool(self._query("SELECT 1 FROM instances WHERE sop_uid = ?", (sop_uid,)))

    def record_instance(self, header: InstanceHeader, path: Path, calling_ae: str, now: float | None = None) -> StoreResult:
        """Index a durably written instance; idempotent for a SOP Instance UID already indexed.

        Committed with ``synchronous=NORMAL`` so the C-STORE path pays one device flush (the spool
        file's) instead of two: the spool file is the record of truth for a received instance, and a
        row a power loss rolled back is restored at start-up from the file (``Node`` indexes every
        spooled file the index lacks). A process crash (SIGKILL) loses nothing: a committed WAL frame
        is in the OS page cache.
        """
        now = time.time() if now is None else now
        with self._tx(synchronous="NORMAL") as db:
            if db.execute("SELECT 1 FROM instances WHERE sop_uid = ?", (header.sop_instance_uid,)).fetchone():
                return StoreResult(new_instance=False, new_series=False, reopened_series=False)
            db.execute(
                "INSERT INTO studies(study_uid, first_received_at, last_received_at) VALUES (?, ?, ?) "
                "ON CONFLICT(study_uid) DO UPDATE SET last_received_at = excluded.last_received_at",
                (header.study_instance_uid, now, now),
            )
            row = db.execute("SELECT state FROM series WHERE series_uid = ?", (header.series_instance_uid,)).fetchone()
            new_series = row is None
            reopened = row is not None and row["state"] == "complete"
            if new_series:
                db.execute(
                    "INSERT INTO series(series_uid, study_uid, modality, description, series_number, state, "
                    "last_received_at) VALUES (?, ?, ?, ?, ?, 'receiving', ?)",
                    (
                        header.series_instance_uid,
                        header.study_instance_uid,
                        header.modality,
                        header.series_description,
                        header.series_number,
                        now,
                    ),
                )
            else:
                db.execute(
                    "UPDATE series SET state = 'receiving', last_received_at = ?, completed_at = NULL "
                    "WHERE series_uid = ?",
                    (now, header.series_instance_uid),
                )
            db.execute(
                "INSERT INTO instances(sop_uid, series_uid, study_uid, sop_class_uid, instance_number, "
                "transfer_syntax_uid, path, calling_ae, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    header.sop_instance_uid,
                    header.series_instance_uid,
                    header.study_instance_uid,
                    header.sop_class_uid,
                    header.instance_number,
                    header.transfer_syntax_uid,
                    str(path),
                    calling_ae,
                    now,
                ),
            )
        return StoreResult(new_instance=True, new_series=new_series, reopened_series=reopened)

    # -- series --------------------------------------------------------------------------------------
    _SERIES_SQL = (
        "SELECT s.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid) AS instance_count "
        "FROM series s"
    )

    def series(self, series_uid: str) -> SeriesRow | None:
        rows = self._query(f"{self._SERIES_SQL} WHERE s.series_uid = ?", (series_uid,))
        return _from_row(SeriesRow, rows[0]) if rows else None

    def study_series(self, study_uid: str) -> list[SeriesRow]:
        rows = self._query(f"{self._SERIES_SQL} WHERE s.study_uid = ? ORDER BY s.series_number, s.series_uid", (study_uid,))
        return [_from_row(SeriesRow, r) for r in rows]

    def receiving_series(self) -> list[SeriesRow]:
        return [_from_row(SeriesRow, r) for r in self._query(f"{self._SERIES_SQL} WHERE s.state = 'receiving'")]

    def study_exists(self, study_uid: str) -> bool:
        return bool(self._query("SELECT 1 FROM studies WHERE study_uid = ?", (study_uid,)))

    def series_instances(self, series_uid: str) -> list[InstanceRow]:
        rows = self._query(
            "SELECT * FROM instances WHERE series_uid = ? ORDER BY instance_number, sop_uid", (series_uid,)
        )
        return [_from_row(InstanceRow, r) for r in rows]

    def indexed_sop_uids(self) -> set[str]:
        """The SOP Instance UIDs of every indexed instance (for the start-up scan of the spool)."""
        return {r["sop_uid"] for r in self._query("SELECT sop_uid FROM instances")}

    def instance_count(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM instances")[0]["n"])

    def complete_series(self, series_uid: str, quiet_before: float | None = None, now: float | None = None) -> JobRow | None:
        """Mark a series complete and make sure a queued job covers its study.

        With ``quiet_before`` the series is completed only if nothing arrived after that time
        (the quiet-period check); without it the completion is forced. Returns the queued job
        when the series changed state, None when it was already complete or not quiet.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT * FROM series WHERE series_uid = ?", (series_uid,)).fetchone()
            if row is None or row["state"] == "complete":
                return None
            if quiet_before is not None and row["last_received_at"] > quiet_before:
                return None
            db.execute(
                "UPDATE series SET state = 'complete', completed_at = ? WHERE series_uid = ?", (now, series_uid)
            )
            return self._ensure_study_job(db, row["study_uid"], now, may_change_result=may_change_result(row["modality"]))

    def _ensure_study_job(self, db: sqlite3.Connection, study_uid: str, now: float,
                          may_change_result: bool = True) -> JobRow | None:
        latest = db.execute(
            "SELECT * FROM jobs WHERE kind = 'study' AND study_uid = ? ORDER BY version DESC LIMIT 1", (study_uid,)
        ).fetchone()
        if latest is not None and latest["state"] == "queued":
            return _from_row(JobRow, latest)
        if latest is not None and not may_change_result:
            return None  # e.g. our own SEG/SR routed back by the PACS: no new version, no routing loop
        version = 1 if latest is None else int(latest["version"]) + 1
        cursor = db.execute(
            "INSERT INTO jobs(kind, study_uid, version, state, stage, created_at, updated_at) "
            "VALUES ('study', ?, ?, 'queued', 'process', ?, ?)",
            (study_uid, version, now, now),
        )
        return _from_row(JobRow, db.execute("SELECT * FROM jobs WHERE id = ?", (cursor.lastrowid,)).fetchone())

    # -- jobs ----------------------------------------------------------------------------------------
    def job(self, job_id: int) -> JobRow | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _from_row(JobRow, rows[0]) if rows else None

    def jobs(self, limit: int = 50, study_uid: str | None = None) -> list[JobRow]:
        if study_uid is None:
            rows = self._query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query("SELECT * FROM jobs WHERE study_uid = ? ORDER BY id DESC LIMIT ?", (study_uid, limit))
        return [_from_row(JobRow, r) for r in rows]

    def claim_study_job(self, now: float | None = None) -> JobRow | None:
        """Take the oldest queued study job whose series are all complete; it becomes ``processing``."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute(
                "SELECT j.* FROM jobs j WHERE j.state = 'queued' AND j.kind = 'study' AND j.next_attempt_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM series s WHERE s.study_uid = j.study_uid AND s.state = 'receiving') "
                "ORDER BY j.id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'processing', stage = 'process', attempt = attempt + 1, updated_at = ? "
                "WHERE id = ?",
                (now, row["id"]),
            )
            return _from_row(JobRow, db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def finish_processing(self, job_id: int, outputs: Sequence[Path], destinations: Sequence[str], now: float | None = None) -> JobRow:
        """Record a job's output files and queue one send per destination (or finish it if nothing to send)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            for path in outputs:
                db.execute("INSERT INTO outputs(job_id, path) VALUES (?, ?)", (job_id, str(path)))
            if outputs and destinations:
                for name in destinations:
                    db.execute(
                        "INSERT OR REPLACE INTO sends(job_id, destination, state, attempt, next_attempt_at, updated_at) "
                        "VALUES (?, ?, 'pending', 0, 0, ?)",
                        (job_id, name, now),
                    )
                db.execute(
                    "UPDATE jobs SET state = 'sending', stage = 'send', last_error = NULL, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            else:
                db.execute(
                    "UPDATE jobs SET state = 'done', stage = 'done', last_error = NULL, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            return _from_row(JobRow, db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def fail_job(self, job_id: int, stage: str, error: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = 'failed', stage = ?, last_error = ?, updated_at = ? WHERE id = ?",
                (stage, error[:2000], now, job_id),
            )

    def create_send_job(self, files: Sequence[Path], destinations: Sequence[str], study_uid: str | None = None, now: float | None = None) -> int:
        """A job that only sends existing files (no processing); returns its id."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO jobs(kind, study_uid, version, state, stage, created_at, updated_at) "
                "VALUES ('send', ?, 1, 'queued', 'send', ?, ?)",
                (study_uid, now, now),
            )
            job_id = int(cursor.lastrowid or 0)
        self.finish_processing(job_id, files, destinations, now)
        return job_id

    def outputs(self, job_id: int) -> list[Path]:
        return [Path(r["path"]) for r in self._query("SELECT path FROM outputs WHERE job_id = ? ORDER BY id", (job_id,))]

    # -- sends ---------------------------------------------------------------------------------------
    def sends(self, job_id: int) -> list[SendRow]:
        return [_from_row(SendRow, r) for r in self._query("SELECT * FROM sends WHERE job_id = ? ORDER BY destination", (job_id,))]

    def due_sends(self, now: float | None = None) -> list[SendRow]:
        now = time.time() if now is None else now
        rows = self._query(
            "SELECT s.* FROM sends s JOIN jobs j ON j.id = s.job_id WHERE s.state = 'pending' AND j.state = 'sending' "
            "AND s.next_attempt_at <= ? ORDER BY s.next_attempt_at, s.job_id",
            (now,),
        )
        return [_from_row(SendRow, r) for r in rows]

    def next_send_time(self) -> float | None:
        rows = self._query(
            "SELECT MIN(s.next_attempt_at) AS t FROM sends s JOIN jobs j ON j.id = s.job_id "
            "WHERE s.state = 'pending' AND j.state = 'sending'"
        )
        return rows[0]["t"] if rows and rows[0]["t"] is not None else None

    def record_send(
        self,
        job_id: int,
        destination: str,
        state: str,
        status: str,
        error: str | None,
        next_attempt_at: float = 0.0,
        now: float | None = None,
    ) -> JobRow:
        """Record one send attempt (state pending = retry at ``next_attempt_at``) and roll the job state up."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "UPDATE sends SET state = ?, attempt = attempt + 1, next_attempt_at = ?, last_status = ?, "
                "last_error = ?, updated_at = ? WHERE job_id = ? AND destination = ?",
                (state, next_attempt_at, status, error, now, job_id, destination),
            )
            states = [r["state"] for r in db.execute("SELECT state FROM sends WHERE job_id = ?", (job_id,))]
            attempts = db.execute("SELECT MAX(attempt) AS a FROM sends WHERE job_id = ?", (job_id,)).fetchone()["a"]
            if all(s == "done" for s in states):
                job_state, stage, job_error = "done", "done", None
            elif "pending" in states:
                job_state, stage, job_error = "sending", "send", error
            else:
                job_state, stage, job_error = "failed", "send", error
            db.execute(
                "UPDATE jobs SET state = ?, stage = ?, attempt = ?, next_attempt_at = ?, last_status = ?, "
                "last_error = ?, updated_at = ? WHERE id = ?",
                (job_state, stage, attempts or 0, next_attempt_at, status, job_error, now, job_id),
            )
            return _from_row(JobRow, db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    # -- restart and operator actions ----------------------------------------------------------------
    def requeue_interrupted(self, now: float | None = None) -> list[int]:
        """After a restart: jobs left ``processing`` by a crash go back to ``queued``."""
        now = time.time() if now is None else now
        with self._tx() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE state = 'processing'")]
            db.execute("UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'processing'", (now,))
        return ids

    def retry_job(self, job_id: int, now: float | None = None) -> JobRow:
        """Re-queue a failed (or any finished) job: a failed send is retried, otherwise processing reruns."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job with id {job_id}")
            if row["state"] in ("processing",):
                raise ValueError(f"job {job_id} is being processed right now")
            failed_sends = db.execute(
                "SELECT COUNT(*) AS n FROM sends WHERE job_id = ? AND state = 'failed'", (job_id,)
            ).fetchone()["n"]
            if row["stage"] == "send" and failed_sends:
                db.execute(
                    "UPDATE sends SET state = 'pending', attempt = 0, next_attempt_at = 0, updated_at = ? "
                    "WHERE job_id = ? AND state = 'failed'",
                    (now, job_id),
                )
                db.execute(
                    "UPDATE jobs SET state = 'sending', attempt = 0, next_attempt_at = 0, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            elif row["kind"] == "study":
                db.execute("DELETE FROM sends WHERE job_id = ?", (job_id,))
                db.execute("DELETE FROM outputs WHERE job_id = ?", (job_id,))
                db.execute(
                    "UPDATE jobs SET state = 'queued', stage = 'process', attempt = 0, next_attempt_at = 0, "
                    "last_error = NULL, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            else:
                db.execute(
                    "UPDATE sends SET state = 'pending', attempt = 0, next_attempt_at = 0, updated_at = ? WHERE job_id = ?",
                    (now, job_id),
                )
                db.execute(
                    "UPDATE jobs SET state = 'sending', stage = 'send', attempt = 0, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            return _from_row(JobRow, db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    # -- retention -----------------------------------------------------------------------------------
    def expired_studies(self, older_than: float) -> list[str]:
        """Studies last received before ``older_than`` with no active job."""
        placeholders = ",".join("?" for _ in ACTIVE_JOB_STATES)
        rows = self._query(
            f"SELECT study_uid FROM studies st WHERE last_received_at < ? AND NOT EXISTS "
            f"(SELECT 1 FROM jobs j WHERE j.study_uid = st.study_uid AND j.state IN ({placeholders})) "
            f"AND NOT EXISTS (SELECT 1 FROM series s WHERE s.study_uid = st.study_uid AND s.state = 'receiving')",
            (older_than, *ACTIVE_JOB_STATES),
        )
        return [r["study_uid"] for r in rows]

    def finished_jobs_before(self, older_than: float) -> list[JobRow]:
        """Jobs ``done`` or ``failed`` whose last change is older than ``older_than``."""
        rows = self._query(
            "SELECT * FROM jobs WHERE state IN ('done', 'failed') AND updated_at < ? ORDER BY id", (older_than,)
        )
        return [_from_row(JobRow, r) for r in rows]

    def forget_study(self, study_uid: str) -> None:
        """Remove a study's instances and series from the index (jobs stay for the record)."""
        with self._tx() as db:
            db.execute("DELETE FROM instances WHERE study_uid = ?", (study_uid,))
            db.execute("DELETE FROM series WHERE study_uid = ?", (study_uid,))
            db.execute("DELETE FROM studies WHERE study_uid = ?", (study_uid,))


_CASTS: dict[str, type] = {"int": int, "float": float}


def _from_row(cls: type[_Row], row: sqlite3.Row) -> _Row:
    """The row dataclass ``cls`` (SeriesRow, InstanceRow, JobRow, SendRow) from the columns of the same
    names; plain ``int``/``float`` fields are converted, nullable ones are taken as stored."""
    values: dict[str, object] = {}
    for f in fields(cls):  # type: ignore[arg-type]  # every _Row is one of the dataclasses above
        cast = _CASTS.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
        values[f.name] = row[f.name] if cast is None else cast(row[f.name])
    return cls(**values)
