"""Durable files in the spool: temporary file, atomic rename, fsync; directory fsyncs where needed.

Two writers:

* ``write_durably`` (job outputs, outbox copies): temporary file, fsync, atomic rename, fsync of
  the directory. Portable POSIX durability; three device flushes per file.
* ``store_instance`` (the C-STORE hot path): one device flush per instance on journaling file
  systems, see its docstring for why that is as durable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias

from .uids import validate_uid

Buffer: TypeAlias = bytes | bytearray | memoryview
INSTANCE_SUFFIX = ".dcm"
TEMP_SUFFIX = ".tmp"

# File systems whose fsync(file) also commits, in the same atomic journal/log transaction or an
# earlier one, every namespace change already made to that inode (its create and its rename):
# ext4 (jbd2: a rename marks the renamed inode dirty for its ctime, so the inode's sync
# transaction is at least the rename's, and jbd2 commits transactions in order), XFS (the rename
# logs the source inode; fsync forces the log up to the inode's last commit) and btrfs (fsync logs
# the inode's new names in the log tree). On any other file system the directory is fsynced too.
JOURNALED_RENAME_FILESYSTEMS = frozenset({"ext4", "ext3", "xfs", "btrfs"})


def instance_path(spool_dir: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """``<spool>/studies/<study>/<series>/<sop>.dcm``; every part is validated as a UID first."""
    return (
        Path(spool_dir)
        / "studies"
        / validate_uid(study_uid, "Study Instance UID")
        / validate_uid(series_uid, "Series Instance UID")
        / f"{validate_uid(sop_uid, 'SOP Instance UID')}{INSTANCE_SUFFIX}"
    )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_parents(path: Path) -> None:
    """Create the missing folders above ``path``, each made durable in its parent."""
    created = []
    parent = path.parent
    if parent.is_dir():
        return
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    for directory in created:  # new directories must be durable in their parents too
        _fsync_dir(directory.parent)


def _temp_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that after return it survives a crash or power loss.

    Raises OSError on any failure; no partial file is ever left under ``path``.
    """
    path = Path(path)
    _make_parents(path)
    tmp = _temp_path(path)
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


@lru_cache(maxsize=64)
def _filesystem_type(directory: str) -> str:
    """The type (``ext4``, ``xfs``, ``nfs``, ...) of the mount holding ``directory``; '' if unknown."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    best, fstype = "", ""
    target = os.path.realpath(directory)
    for line in lines:
        fields = line.split()
        try:
            mount_point = fields[4].replace("\\040", " ")
            fs = fields[fields.index("-") + 1]
        except (IndexError, ValueError):
            continue
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, fs
    return fstype


def rename_is_journaled(directory: Path) -> bool:
    """True when fsync of a renamed file also makes its new name durable (see JOURNALED_RENAME_FILESYSTEMS)."""
    return _filesystem_type(str(directory)) in JOURNALED_RENAME_FILESYSTEMS


def store_instance(path: Path, data: bytes | Sequence[Buffer], journaled: bool | None = None) -> None:
    """Store a received instance under ``path``; after return it survives a crash or power loss.

    ``data`` is the file's bytes, or its consecutive parts (the Part 10 header and a view of the
    received data set: written one after the other, never joined in memory). The bytes are written
    once to a temporary file in the target folder, atomically renamed into place, and only then
    fsynced. On a journaling file system (``journaled``; detected from the
    spool's mount when None) that single fsync commits the file's data, its inode and its rename
    (see JOURNALED_RENAME_FILESYSTEMS), so the instance is durable with one device flush instead of
    three. Elsewhere the folder is fsynced as well. New folders are fsynced into their parents once.

    Crash-consistency: a crash between the rename and the fsync can leave a short or empty file
    under ``path``, but only for an instance that was never acknowledged (the C-STORE response is
    sent after this returns); the sender resends it (the index has no row, so it is written again),
    and the start-up scan of the spool skips undecodable files. Raises OSError on any failure, after
    removing what it wrote.
    """
    path = Path(path)
    _make_parents(path)
    if journaled is None:
        journaled = rename_is_journaled(path.parent)
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    renamed = False
    try:
        for part in (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data:
            with memoryview(part) as whole:
                written = 0
                while written < len(whole):
                    written += os.write(fd, whole[written:])
        os.replace(tmp, path)
        renamed = True
        os.fsync(fd)  # fsync, not fdatasync: the rename changed the inode (ctime), tying its transaction
        if not journaled:
            _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(path if renamed else tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def spooled_instances(spool_dir: Path) -> Iterator[Path]:
    """Every ``studies/<study>/<series>/<sop>.dcm`` file in the spool (temporary files excluded)."""
    studies = Path(spool_dir) / "studies"
    if not studies.is_dir():
        return
    for study in os.scandir(studies):
        if not study.is_dir(follow_symlinks=False):
            continue
        for series in os.scandir(study.path):
            if not series.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(series.path):
                if entry.name.endswith(INSTANCE_SUFFIX) and not entry.name.startswith("."):
                    yield Path(entry.path)


def stale_temporary_files(spool_dir: Path) -> Iterator[Path]:
    """Temporary files left in series folders by writes a crash interrupted."""
    studies = Path(spool_dir) / "studies"
    if studies.is_dir():
        yield from studies.glob(f"*/*/.*{TEMP_SUFFIX}")
