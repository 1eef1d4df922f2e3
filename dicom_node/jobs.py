"""The seam between the node and the analysis pipeline: ``StudyJob`` in, DICOM files out.

The node calls a ``StudyProcessor`` on a worker thread once per study job (one job per study; a late
series or instance after completion yields a new job ``version``). The processor reads the spooled
files, writes its result files (SEG, SR, report image...) under ``job.work_dir`` and returns their
paths; the node then sends every returned file to every configured destination, with retries.
A processor may raise: the job is then marked ``failed`` at stage ``process`` with the error text,
and the node keeps serving. ``bianque retry JOB`` runs it again.

The real pipeline plugs in from ``dicom_node/pipeline.py``: ``build_processor(config: NodeConfig)
-> StudyProcessor``, imported lazily by the node when ``[processing] enabled = true``. When
processing is disabled, or that module is unavailable, ``NoProcessor`` is used (job done, nothing sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SeriesFiles:
    """One complete series of the study, with its spooled Part 10 files in instance-number order."""

    series_uid: str
    modality: str
    description: str
    series_number: int | None
    files: tuple[Path, ...]
    sop_uids: tuple[str, ...]
    sop_class_uids: tuple[str, ...]


@dataclass(frozen=True)
class StudyJob:
    job_id: int
    study_uid: str
    version: int
    series: tuple[SeriesFiles, ...]
    work_dir: Path
    """An empty folder in the spool, owned by this job version: write result files here."""


@runtime_checkable
class StudyProcessor(Protocol):
    def __call__(self, job: StudyJob) -> Sequence[Path]:
        """Process one study; return the paths of the DICOM files to send (may be empty)."""
        ...


class NoProcessor:
    """Processing disabled: every job is done without outputs."""

    def __call__(self, job: StudyJob) -> Sequence[Path]:
        return ()
