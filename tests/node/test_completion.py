"""Series completion: quiet period, late instances (new job version), forced completion, the processor seam."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicom_node.config import dump_toml
from dicom_node.jobs import StudyJob, StudyProcessor
from peers import peer_env, require_tool, wait_for

pytestmark = pytest.mark.peers  # real DCMTK / Orthanc peers over loopback

REPO = Path(__file__).resolve().parents[2]


class RecordingProcessor:
    """Records every StudyJob it sees; optionally fails or writes one output file."""

    def __init__(self, fail: bool = False, output: bool = False) -> None:
        self.jobs: list[StudyJob] = []
        self.fail = fail
        self.output = output
        self.lock = threading.Lock()

    def __call__(self, job: StudyJob) -> Sequence[Path]:
        with self.lock:
            self.jobs.append(job)
        if self.fail:
            raise RuntimeError("segmentation exploded")
        if not self.output:
            return []
        source = pydicom.dcmread(job.series[0].files[0])
        source.SOPInstanceUID = generate_uid()
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        source.SeriesInstanceUID = generate_uid()
        source.SeriesDescription = "BIANQUE RESULT"
        path = job.work_dir / "result.dcm"
        source.save_as(path, enforce_file_format=True)
        return [path]


def _storescu(node, *paths: Path) -> None:
    exe = require_tool("/usr/bin/storescu")
    result = subprocess.run([exe, "-aet", "STORESCU", "-aec", node.aet, node.host, str(node.port), *map(str, paths)],
                            env=peer_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_quiet_period_completes_series_and_runs_one_job_per_study(node_factory, mr_study) -> None:
    processor = RecordingProcessor()
    assert isinstance(processor, StudyProcessor)
    node = node_factory(processor=processor)
    _storescu(node, *mr_study.files)
    job = wait_for(lambda: next((j for j in node.index.jobs() if j.state == "done"), None), 15, "study job done")
    assert job.study_uid == mr_study.study_uid and job.version == 1
    assert all(node.index.series(s.series_uid).state == "complete" for s in mr_study.series)
    assert len(processor.jobs) == 1
    seen = processor.jobs[0]
    assert seen.study_uid == mr_study.study_uid and seen.job_id == job.id and seen.version == 1
    assert {s.series_uid for s in seen.series} == {s.series_uid for s in mr_study.series}
    by_uid = {s.series_uid: s for s in seen.series}
    for generated in mr_study.series:
        got = by_uid[generated.series_uid]
        assert got.description == generated.description and got.modality == "MR"
        assert list(got.sop_uids) == list(generated.sop_uids)  # instance-number order
        assert all(p.is_file() for p in got.files)
    assert seen.work_dir.is_dir()


def test_late_instance_starts_a_new_job_version(node_factory, mr_study) -> None:
    processor = RecordingProcessor()
    node = node_factory(processor=processor)
    first = mr_study.series[0]
    _storescu(node, *first.files[:-1])
    wait_for(lambda: [j for j in node.index.jobs() if j.state == "done"], 15, "first job done")
    _storescu(node, first.files[-1])
    wait_for(lambda: [j for j in node.index.jobs() if j.state == "done" and j.version == 2], 15, "version 2 done")
    assert [j.sop_uids for j in (s.series[0] for s in processor.jobs)] == [first.sop_uids[:-1], first.sop_uids]
    assert [j.version for j in processor.jobs] == [1, 2]


def test_processor_failure_is_recorded_and_node_keeps_serving(node_factory, mr_study) -> None:
    processor = RecordingProcessor(fail=True)
    node = node_factory(processor=processor)
    _storescu(node, *mr_study.series[0].files)
    job = wait_for(lambda: next((j for j in node.index.jobs() if j.state == "failed"), None), 15, "job failed")
    assert job.stage == "process" and "segmentation exploded" in (job.last_error or "")
    _storescu(node, *mr_study.series[1].files)  # still receiving
    assert node.index.series(mr_study.series[1].series_uid).instance_count == len(mr_study.series[1].files)


class _StageFailure(RuntimeError):
    stage = "segment"


def test_failed_stage_named_by_the_processor_is_recorded(node_factory, mr_study) -> None:
    def processor(job):  # a pipeline failure carries the stage it failed in (dicom_node.pipeline.StageError)
        raise _StageFailure("model weights unreadable")

    node = node_factory(processor=processor)
    _storescu(node, *mr_study.series[0].files)
    job = wait_for(lambda: next((j for j in node.index.jobs() if j.state == "failed"), None), 15, "job failed")
    assert job.stage == "segment" and "model weights unreadable" in (job.last_error or "")


def test_bianque_complete_forces_completion_while_serving(node_factory, mr_study, tmp_path: Path) -> None:
    processor = RecordingProcessor()
    node = node_factory({"completion": {"quiet_period_s": 3600}}, processor=processor)
    _storescu(node, *mr_study.files)
    assert node.index.jobs() == []
    config_file = tmp_path / "node.toml"
    config_file.write_text(dump_toml(node.config))
    run = lambda *args: subprocess.run([sys.executable, "-m", "dicom_node.cli", *args], capture_output=True,  # noqa: E731
                                       text=True, cwd=REPO, timeout=60)
    unknown = run("complete", "--config", str(config_file), "1.2.3.4.5")
    assert unknown.returncode == 1 and "no series or study" in unknown.stdout
    one = run("complete", "--config", str(config_file), mr_study.series[0].series_uid)
    assert one.returncode == 0, one.stdout + one.stderr
    assert node.index.series(mr_study.series[0].series_uid).state == "complete"
    assert node.index.series(mr_study.series[1].series_uid).state == "receiving"
    assert [j.state for j in node.index.jobs()] == ["queued"]  # waits for the other series of the study
    study = run("complete", "--config", str(config_file), mr_study.study_uid)
    assert study.returncode == 0
    wait_for(lambda: [j for j in node.index.jobs() if j.state == "done"], 15, "forced job done")
    assert len(processor.jobs) == 1 and len(processor.jobs[0].series) == 3
    status = run("status", "--config", str(config_file))
    assert status.returncode == 0 and mr_study.study_uid in status.stdout and "done" in status.stdout


def test_completion_timers_fire_once_per_quiet_series() -> None:
    from dicom_node.completion import CompletionTimers

    fired: list[str] = []
    timers = CompletionTimers(10.0, fired.append)
    timers.touch("1.1", at=100.0)
    timers.touch("1.2", at=100.0)
    timers.touch("1.1", at=105.0)  # a new instance re-arms the timer
    assert timers.sweep(now=109.0) == []
    assert timers.sweep(now=110.0) == ["1.2"]
    assert timers.pending() == ["1.1"]
    assert timers.sweep(now=115.0) == ["1.1"]
    assert timers.sweep(now=200.0) == [] and fired == ["1.2", "1.1"]
    assert 0.05 <= CompletionTimers(0.5, fired.append).sweep_interval_s <= 0.1


class WarmingProcessor(RecordingProcessor):
    """A processor with ``warm_up`` (like the pipeline's): the node calls it at start, in the background."""

    def __init__(self, fail_warm_up: bool = False) -> None:
        super().__init__()
        self.warmed = threading.Event()
        self.warm_thread = ""
        self.fail_warm_up = fail_warm_up

    def warm_up(self) -> None:
        self.warm_thread = threading.current_thread().name
        self.warmed.set()
        if self.fail_warm_up:
            raise RuntimeError("weights unreadable")


@pytest.mark.parametrize("fail", [False, True])
def test_processor_is_warmed_up_at_start_and_a_failed_warm_up_keeps_the_node_serving(node_factory, mr_study,
                                                                                      fail: bool) -> None:
    processor = WarmingProcessor(fail_warm_up=fail)
    node = node_factory(processor=processor)
    assert processor.warmed.wait(10), "warm_up was not called at start"
    assert processor.warm_thread == "bianque-warm-up"
    _storescu(node, *mr_study.series[0].files)
    wait_for(lambda: processor.jobs, 20, "the study job ran")
    assert [job.study_uid for job in processor.jobs] == [mr_study.study_uid]
