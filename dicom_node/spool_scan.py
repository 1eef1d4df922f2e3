"""Start-up scan: index every spooled instance file that the index lacks.

The C-STORE path makes the spool file durable before answering Success but commits its index row
with ``synchronous=NORMAL`` (see ``SpoolIndex.record_instance``), so after a power loss the newest
rows may be missing. The file is the record of truth: this scan reads the header of each unindexed
file and records it again, so its series completes and is processed as if nothing happened.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from .headers import UndecodableDataset, read_header
from .index import SpoolIndex
from .spool import spooled_instances, stale_temporary_files
from .uids import InvalidUID

log = structlog.get_logger("dicom_node.spool_scan")


def index_unindexed_instances(spool_dir: Path, index: SpoolIndex, retention_days: float = 0.0) -> list[str]:
    """Record spooled files missing from the index; returns their SOP Instance UIDs.

    Files older than the retention period are left alone (a study whose removal was interrupted
    must not come back), and so are files that do not decode or whose path disagrees with their
    UIDs (a write a crash cut short; its sender never got Success and sends it again).
    """
    for stale in stale_temporary_files(spool_dir):
        try:
            stale.unlink()
        except OSError:
            pass
    indexed = index.indexed_sop_uids()
    cutoff = time.time() - retention_days * 86400.0 if retention_days > 0 else None
    restored: list[str] = []
    for path in spooled_instances(spool_dir):
        if path.stem in indexed:
            continue
        try:
            stat = path.stat()
            if cutoff is not None and stat.st_mtime < cutoff:
                continue
            header = read_header(path.read_bytes())
        except (OSError, UndecodableDataset, InvalidUID) as exc:
            log.warning("spooled file not indexed: unreadable", path=str(path), error=str(exc)[:200])
            continue
        expected = (header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid)
        if (path.parent.parent.name, path.parent.name, path.stem) != expected:
            log.warning("spooled file not indexed: path and UIDs differ", path=str(path),
                        sop_instance_uid=header.sop_instance_uid)
            continue
        index.record_instance(header, path, calling_ae="", now=stat.st_mtime)
        restored.append(header.sop_instance_uid)
        log.info("instance indexed from spool", study_uid=header.study_instance_uid,
                 series_uid=header.series_instance_uid, sop_instance_uid=header.sop_instance_uid)
    return restored
