"""The spool index and spool files: restart recovery, retry, retention, UID-safe paths."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dicom_node.headers import InstanceHeader, UndecodableDataset, read_header
from dicom_node.index import SpoolIndex
from dicom_node.spool import instance_path, write_durably
from dicom_node.uids import InvalidUID, validate_uid


def _header(study: str = "1.2.3", series: str = "1.2.3.4", sop: str = "1.2.3.4.5") -> InstanceHeader:
    return InstanceHeader(sop, "1.2.840.10008.5.1.4.1.1.4", series, study, "MR", "SAG T2", 3, 1, "1.2.840.10008.1.2.1")


def test_uid_validation_and_safe_paths(tmp_path: Path) -> None:
    assert validate_uid(" 1.2.840.10008\0") == "1.2.840.10008"
    for bad in (None, "", "1.2.a", "../1.2", "1.2/3", "1." + "2" * 70, "1..2"):
        with pytest.raises(InvalidUID):
            validate_uid(bad)
    path = instance_path(tmp_path, "1.2", "1.2.3", "1.2.3.4")
    assert path == tmp_path / "studies" / "1.2" / "1.2.3" / "1.2.3.4.dcm"
    with pytest.raises(InvalidUID):
        instance_path(tmp_path, "1.2", "../../etc", "1.2.3.4")


def test_write_durably_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.dcm"
    write_durably(target, b"hello")
    assert target.read_bytes() == b"hello"
    write_durably(target, b"again")
    assert target.read_bytes() == b"again"
    (tmp_path / "blocked").write_text("file")
    with pytest.raises(OSError):
        write_durably(tmp_path / "blocked" / "y.dcm", b"data")
    assert not list(tmp_path.rglob("*.tmp"))


def test_read_header_rejects_non_dicom() -> None:
    with pytest.raises(UndecodableDataset):
        read_header(b"not dicom at all" * 10)


def test_interrupted_job_is_requeued_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    index = SpoolIndex(db)
    index.record_instance(_header(), tmp_path / "x.dcm", "PACS")
    job = index.complete_series("1.2.3.4")
    assert job is not None and job.state == "queued" and job.version == 1
    assert index.complete_series("1.2.3.4") is None  # idempotent
    claimed = index.claim_study_job()
    assert claimed is not None and claimed.state == "processing"
    index.close()  # "crash" while processing
    reopened = SpoolIndex(db)
    assert reopened.requeue_interrupted() == [job.id]
    assert reopened.job(job.id).state == "queued"
    assert reopened.claim_study_job().id == job.id
    reopened.close()


def test_claim_waits_for_every_series_of_the_study(tmp_path: Path) -> None:
    index = SpoolIndex(tmp_path / "index.sqlite3")
    index.record_instance(_header(series="1.2.3.4", sop="1.1"), tmp_path / "a", "PACS")
    index.record_instance(_header(series="1.2.3.5", sop="1.2"), tmp_path / "b", "PACS")
    index.complete_series("1.2.3.4")
    assert index.claim_study_job() is None
    index.complete_series("1.2.3.5")
    job = index.claim_study_job()
    assert job is not None and [j.id for j in index.jobs()] == [job.id]  # one job per study
    index.close()


def test_quiet_check_and_late_instance_versioning(tmp_path: Path) -> None:
    index = SpoolIndex(tmp_path / "index.sqlite3")
    now = time.time()
    index.record_instance(_header(sop="1.1"), tmp_path / "a", "PACS", now=now)
    assert index.complete_series("1.2.3.4", quiet_before=now - 1) is None  # not quiet yet
    first = index.complete_series("1.2.3.4", quiet_before=now + 1)
    assert first is not None
    index.claim_study_job()
    index.finish_processing(first.id, [], [])
    late = index.record_instance(_header(sop="1.2"), tmp_path / "b", "PACS")
    assert late.reopened_series and index.series("1.2.3.4").state == "receiving"
    second = index.complete_series("1.2.3.4")
    assert second is not None and second.version == 2 and second.id != first.id
    index.close()


def test_retry_of_a_failed_processing_job(tmp_path: Path) -> None:
    index = SpoolIndex(tmp_path / "index.sqlite3")
    index.record_instance(_header(), tmp_path / "x.dcm", "PACS")
    job = index.complete_series("1.2.3.4")
    index.claim_study_job()
    index.fail_job(job.id, "process", "no sagittal T2 series")
    failed = index.job(job.id)
    assert failed.state == "failed" and failed.stage == "process"
    retried = index.retry_job(job.id)
    assert retried.state == "queued" and retried.last_error is None
    with pytest.raises(KeyError):
        index.retry_job(12345)
    index.close()


def test_retention_removes_old_idle_studies_only(node_factory, mr_study) -> None:
    node = node_factory({"spool": {"retention_days": 1}}, start=False)
    index = node.index
    old = time.time() - 3 * 86400
    for sop, series in (("2.1", "2.2"), ("3.1", "3.2")):
        study = series[0] + ".9"
        path = instance_path(node.spool_dir, study, series, sop)
        write_durably(path, b"x")
        index.record_instance(_header(study=study, series=series, sop=sop), path, "PACS", now=old)
        index.complete_series(series, now=old)
    busy_job = index.claim_study_job()  # the first study's job is processing: keep it
    finished = index.claim_study_job()
    assert busy_job is not None and finished is not None
    index.finish_processing(finished.id, [], [], now=old)  # the second study's job is done: it may go
    work_dir = node.spool_dir / "jobs" / f"{finished.id:08d}-v{finished.version}"
    work_dir.mkdir(parents=True)
    removed = node.node.apply_retention()
    kept = busy_job.study_uid
    gone = "3.9" if kept == "2.9" else "2.9"
    assert removed == [gone]
    assert not (node.spool_dir / "studies" / gone).exists()
    assert (node.spool_dir / "studies" / kept).exists()
    assert not index.study_exists(gone) and index.study_exists(kept)
    # job files of finished jobs go too (the job rows stay)
    assert not work_dir.exists() and index.job(finished.id).state == "done"


def test_results_routed_back_start_no_new_version(tmp_path: Path) -> None:
    """An auto-routing PACS sends our own SEG/SR/report image back with the study: they are stored, but only
    MR series may start a new version of a study that was analysed before (no routing loop)."""
    index = SpoolIndex(tmp_path / "index.sqlite3")
    index.record_instance(_header(sop="1.1"), tmp_path / "a", "PACS")
    first = index.complete_series("1.2.3.4")
    index.claim_study_job()
    index.finish_processing(first.id, [], [])
    for series, sop, sop_class, modality in (("9.1", "9.1.1", "1.2.840.10008.5.1.4.1.1.66.4", "SEG"),
                                              ("9.2", "9.2.1", "1.2.840.10008.5.1.4.1.1.88.22", "SR"),
                                              ("9.3", "9.3.1", "1.2.840.10008.5.1.4.1.1.7", "OT")):
        index.record_instance(InstanceHeader(sop, sop_class, series, "1.2.3", modality, "BianqueNet", 90, 1,
                                             "1.2.840.10008.1.2.1"), tmp_path / sop, "PACS")
        assert index.complete_series(series) is None
        assert index.series(series).state == "complete"
    assert [j.version for j in index.jobs()] == [1]
    # a new MR series (a repeated acquisition) does start version 2
    index.record_instance(_header(series="1.2.3.7", sop="1.7"), tmp_path / "c", "PACS")
    again = index.complete_series("1.2.3.7")
    assert again is not None and again.version == 2
    # a study whose first series is not MR still gets its job (its outcome: no sagittal T2)
    index.record_instance(InstanceHeader("8.1.1", "1.2.840.10008.5.1.4.1.1.2", "8.1", "8", "CT", "CT", 1, 1,
                                         "1.2.840.10008.1.2.1"), tmp_path / "ct", "PACS")
    assert index.complete_series("8.1").version == 1
    index.close()
