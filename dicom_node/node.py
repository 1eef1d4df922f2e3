"""The running node: receiver, completion timers, processing workers and the sender, wired together.

``Node(config, processor=None)``; ``start()`` returns at once (threads run in the background);
``stop()`` stops accepting associations, lets the work in hand finish, and closes the index.
State lives only in the SQLite index, so a new Node on the same spool resumes where the last one
stopped (or crashed).
"""

from __future__ import annotations

import importlib
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog

from .backoff import retry_delay_s
from .completion import CompletionTimers
from .config import NodeConfig
from .headers import InstanceHeader
from .index import JobRow, SendRow, SpoolIndex, StoreResult
from .jobs import NoProcessor, SeriesFiles, StudyJob, StudyProcessor
from .receiver import Receiver
from .scu import store_files
from .spool import write_durably
from .spool_scan import index_unindexed_instances

log = structlog.get_logger("dicom_node.node")

RETENTION_INTERVAL_S = 3600.0


def default_processor(config: NodeConfig) -> StudyProcessor:
    """The pipeline from ``dicom_node.pipeline.build_processor`` when processing is enabled, else none."""
    if not config.processing.enabled:
        return NoProcessor()
    try:
        module = importlib.import_module("dicom_node.pipeline")
    except ImportError as exc:
        log.warning("processing enabled but the pipeline is unavailable; studies are received only", error=str(exc))
        return NoProcessor()
    build = getattr(module, "build_processor", None)
    if build is None:
        log.warning("dicom_node.pipeline has no build_processor; studies are received only")
        return NoProcessor()
    processor: StudyProcessor = build(config)
    return processor


class Node:
    def __init__(self, config: NodeConfig, processor: StudyProcessor | None = None) -> None:
        self.config = config
        self.spool_dir = Path(config.spool.directory)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.index = SpoolIndex(config.index_path)
        self._processor = processor
        self.receiver = Receiver(config, self.index, on_instance=self._on_instance)
        self.timers = CompletionTimers(config.completion.quiet_period_s, self._on_quiet)
        self._stop = threading.Event()
        self._work = threading.Event()
        self._send_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.receiver.port

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._processor is None:
            self._processor = default_processor(self.config)
        restored = index_unindexed_instances(self.spool_dir, self.index, self.config.spool.retention_days)
        if restored:
            log.warning("spooled instances missing from the index were indexed again", instances=len(restored))
        interrupted = self.index.requeue_interrupted()
        if interrupted:
            log.info("jobs interrupted by a restart are queued again", job_ids=interrupted)
        self.timers.start()
        for series in self.index.receiving_series():
            self.timers.touch(series.series_uid)
            log.info("series still receiving after restart; quiet timer re-armed", series_uid=series.series_uid,
                     study_uid=series.study_uid)
        if self.config.spool.retention_days > 0:
            self.timers.every(RETENTION_INTERVAL_S, self.apply_retention, "retention")
        warm_up = getattr(self._processor, "warm_up", None)
        if callable(warm_up):  # not joined at stop: a compilation in progress must not hold the shutdown
            threading.Thread(target=self._warm_up, args=(warm_up,), name="bianque-warm-up", daemon=True).start()
        for number in range(self.config.processing.workers):
            self._spawn(self._processing_loop, f"bianque-process-{number}")
        self._spawn(self._sending_loop, "bianque-send")
        self.receiver.start()
        log.info("node started", ae_title=self.config.network.ae_title, port=self.port,
                 destinations=[d.name for d in self.config.destinations])

    @staticmethod
    def _warm_up(warm_up: object) -> None:
        try:
            warm_up()  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - the first job tries again and records the error
            log.error("model could not be loaded at start-up; the first study will try again",
                      error=f"{type(exc).__name__}: {exc}")

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop accepting associations, finish the job and send in hand, then close the index."""
        if not self._started:
            self.index.close()
            return
        self._started = False
        self.receiver.stop()
        self._stop.set()
        self._work.set()
        self._send_wake.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        self._threads.clear()
        self.timers.shutdown()
        self.index.close()
        log.info("node stopped", ae_title=self.config.network.ae_title)

    def wake(self) -> None:
        """Make the workers look at the index now (after a forced completion or a retry)."""
        self._work.set()
        self._send_wake.set()

    # -- receive and complete ------------------------------------------------------------------------
    def _on_instance(self, header: InstanceHeader, result: StoreResult) -> None:
        if result.new_instance:
            self.timers.touch(header.series_instance_uid)

    def _on_quiet(self, series_uid: str) -> None:
        quiet_before = time.time() - self.config.completion.quiet_period_s * 0.9
        try:
            job = self.index.complete_series(series_uid, quiet_before=quiet_before)
        except Exception:  # noqa: BLE001 - retry the completion later rather than lose it
            log.exception("could not mark series complete; retrying", series_uid=series_uid)
            self.timers.touch(series_uid)
            return
        if job is None:
            series = self.index.series(series_uid)
            if series is not None and series.state == "receiving":
                self.timers.touch(series_uid)  # an instance arrived as the timer fired
            elif series is not None:
                log.info("series complete, no new analysis", series_uid=series_uid, study_uid=series.study_uid,
                         modality=series.modality,
                         reason="not MR images, and the study was analysed before (e.g. results routed back)")
            return
        series = self.index.series(series_uid)
        log.info("series complete", series_uid=series_uid, study_uid=job.study_uid,
                 instances=series.instance_count if series else None, job_id=job.id, job_version=job.version)
        self._work.set()

    def complete(self, uid: str) -> list[str]:
        """Force completion of a series UID or of every series of a study UID; returns completed series."""
        done = force_complete(self.index, uid)
        self.wake()
        return done

    # -- processing ----------------------------------------------------------------------------------
    def _processing_loop(self) -> None:
        poll = self.config.completion.poll_interval_s
        while not self._stop.is_set():
            try:
                job = self.index.claim_study_job()
            except Exception:  # noqa: BLE001
                log.exception("cannot read jobs from the index")
                job = None
            if job is None:
                self._work.wait(poll)
                self._work.clear()
                continue
            try:
                self._process(job)
            except Exception:  # noqa: BLE001 - e.g. the index is unwritable; the job is requeued on restart
                log.exception("cannot record the outcome of a job", job_id=job.id)
                self._stop.wait(poll)

    def _study_job(self, job: JobRow) -> StudyJob:
        assert job.study_uid is not None
        series: list[SeriesFiles] = []
        for row in self.index.study_series(job.study_uid):
            instances = self.index.series_instances(row.series_uid)
            series.append(
                SeriesFiles(
                    series_uid=row.series_uid,
                    modality=row.modality,
                    description=row.description,
                    series_number=row.series_number,
                    files=tuple(Path(i.path) for i in instances),
                    sop_uids=tuple(i.sop_uid for i in instances),
                    sop_class_uids=tuple(i.sop_class_uid for i in instances),
                )
            )
        work_dir = self.spool_dir / "jobs" / f"{job.id:08d}-v{job.version}"
        if work_dir.exists():
            shutil.rmtree(work_dir)
        work_dir.mkdir(parents=True)
        return StudyJob(job_id=job.id, study_uid=job.study_uid, version=job.version, series=tuple(series), work_dir=work_dir)

    def _process(self, job: JobRow) -> None:
        bound = log.bind(job_id=job.id, study_uid=job.study_uid, job_version=job.version)
        bound.info("job state", state="processing")
        try:
            study_job = self._study_job(job)
            assert self._processor is not None
            outputs = [Path(p) for p in self._processor(study_job)]
            missing = [str(p) for p in outputs if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"processor returned files that do not exist: {missing[:3]}")
        except Exception as exc:  # noqa: BLE001 - one failed study never stops the node
            stage = str(getattr(exc, "stage", "process"))  # the pipeline's StageError names its stage
            bound.exception("job state", state="failed", stage=stage, error=str(exc)[:300])
            self.index.fail_job(job.id, stage, f"{type(exc).__name__}: {exc}")
            return
        destinations = [d.name for d in self.config.destinations]
        finished = self.index.finish_processing(job.id, outputs, destinations)
        bound.info("job state", state=finished.state, outputs=len(outputs), destinations=destinations)
        self._send_wake.set()

    # -- sending -------------------------------------------------------------------------------------
    def enqueue_send(self, files: Sequence[Path], destinations: Sequence[str] | None = None,
                     study_uid: str | None = None) -> int:
        """Queue arbitrary DICOM files for sending (copied into the spool first); returns the job id."""
        names = [d.name for d in self.config.destinations] if destinations is None else list(destinations)
        for name in names:
            self.config.destination(name)  # raises KeyError for an unknown name
        outbox = self.spool_dir / "outbox" / uuid.uuid4().hex
        copies = []
        for number, source in enumerate(files):
            target = outbox / f"{number:05d}.dcm"
            write_durably(target, Path(source).read_bytes())
            copies.append(target)
        job_id = self.index.create_send_job(copies, names, study_uid=study_uid)
        log.info("job state", job_id=job_id, state="sending", files=len(copies), destinations=names)
        self._send_wake.set()
        return job_id

    def _sending_loop(self) -> None:
        poll = self.config.completion.poll_interval_s
        while not self._stop.is_set():
            try:
                due = self.index.due_sends()
            except Exception:  # noqa: BLE001
                log.exception("cannot read sends from the index")
                due = []
            for send in due:
                if self._stop.is_set():
                    break
                try:
                    self._send(send)
                except Exception:  # noqa: BLE001 - keep the sender alive; the send stays pending
                    log.exception("cannot record a send attempt", job_id=send.job_id, destination=send.destination)
                    self._stop.wait(poll)
            if due:
                continue
            try:
                next_at = self.index.next_send_time()
            except Exception:  # noqa: BLE001
                next_at = None
            wait = poll if next_at is None else max(0.0, min(poll, next_at - time.time()))
            self._send_wake.wait(wait)
            self._send_wake.clear()

    def _send(self, send: SendRow) -> None:
        job = self.index.job(send.job_id)
        bound = log.bind(job_id=send.job_id, destination=send.destination, study_uid=job.study_uid if job else None,
                         attempt=send.attempt + 1)
        try:
            destination = self.config.destination(send.destination)
        except KeyError as exc:
            bound.error("send failed: destination no longer configured")
            self.index.record_send(send.job_id, send.destination, "failed", "unknown-destination", str(exc))
            return
        files = self.index.outputs(send.job_id)
        bound.info("send attempt", called_ae=destination.ae_title, host=destination.host, port=destination.port,
                   files=len(files))
        try:
            outcome = store_files(self.config, destination, files, job_id=send.job_id)
        except Exception as exc:  # noqa: BLE001 - unexpected: treat as transient
            bound.exception("send failed unexpectedly")
            from .scu import SendOutcome

            outcome = SendOutcome(False, False, "error", f"{type(exc).__name__}: {exc}", 0)
        attempt = send.attempt + 1
        if outcome.ok:
            row = self.index.record_send(send.job_id, send.destination, "done", outcome.status, None)
            bound.info("send succeeded", instances=outcome.sent, job_state=row.state)
        elif outcome.permanent or attempt >= destination.retry.max_attempts:
            row = self.index.record_send(send.job_id, send.destination, "failed", outcome.status, outcome.error)
            bound.error("send failed for good", status=outcome.status, error=outcome.error, permanent=outcome.permanent,
                        job_state=row.state, hint="fix the cause, then run: bianque retry JOB")
        else:
            delay = retry_delay_s(destination.retry, attempt)
            row = self.index.record_send(send.job_id, send.destination, "pending", outcome.status, outcome.error,
                                         next_attempt_at=time.time() + delay)
            bound.warning("send will be retried", status=outcome.status, error=outcome.error,
                          retry_in_s=round(delay, 2), max_attempts=destination.retry.max_attempts)

    # -- retention -----------------------------------------------------------------------------------
    def apply_retention(self) -> list[str]:
        """Delete spooled studies older than ``spool.retention_days`` that no active job needs."""
        cutoff = time.time() - self.config.spool.retention_days * 86400.0
        removed = []
        for study_uid in self.index.expired_studies(cutoff):
            shutil.rmtree(self.spool_dir / "studies" / study_uid, ignore_errors=True)
            self.index.forget_study(study_uid)
            removed.append(study_uid)
            log.info("study removed from spool (retention)", study_uid=study_uid)
        for job in self.index.finished_jobs_before(cutoff):
            work_dir = self.spool_dir / "jobs" / f"{job.id:08d}-v{job.version}"
            folders = {work_dir} | {p.parent for p in self.index.outputs(job.id) if p.parent.parent.name == "outbox"}
            for folder in folders:
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
                    log.info("job files removed from spool (retention)", job_id=job.id, state=job.state)
        return removed


def force_complete(index: SpoolIndex, uid: str) -> list[str]:
    """Mark a series (by Series Instance UID) or every series of a study complete; raise KeyError if unknown."""
    series = index.series(uid)
    if series is not None:
        targets = [series.series_uid]
    elif index.study_exists(uid):
        targets = [s.series_uid for s in index.study_series(uid)]
    else:
        raise KeyError(f"no series or study with UID {uid} in the spool index")
    completed = []
    for series_uid in targets:
        job = index.complete_series(series_uid)
        if job is not None:
            completed.append(series_uid)
            log.info("series complete (forced)", series_uid=series_uid, study_uid=job.study_uid, job_id=job.id)
    return completed
