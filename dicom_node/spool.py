"""Durable files in the spool: temporary file, fsync, atomic rename, fsync of the directory."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from .uids import validate_uid


def instance_path(spool_dir: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """``<spool>/studies/<study>/<series>/<sop>.dcm``; every part is validated as a UID first."""
    return (
        Path(spool_dir)
        / "studies"
        / validate_uid(study_uid, "Study Instance UID")
        / validate_uid(series_uid, "Series Instance UID")
        / f"{validate_uid(sop_uid, 'SOP Instance UID')}.dcm"
    )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that after return it survives a crash or power loss.

    Raises OSError on any failure; no partial file is ever left under ``path``.
    """
    path = Path(path)
    created = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    for directory in created:  # new directories must be durable in their parents too
        _fsync_dir(directory.parent)
