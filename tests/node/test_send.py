"""Sending results to Orthanc: arrival by SOP Instance UID, retries across an outage, permanent failures."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from dicom_node.backoff import retry_delay_s
from dicom_node.config import RetryPolicy, dump_toml
from peers import OrthancPeer, free_port, orthanc_destination, wait_for

pytestmark = pytest.mark.peers  # real DCMTK / Orthanc peers over loopback

REPO = Path(__file__).resolve().parents[2]


def _bianque(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicom_node.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def _sop_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_node_sends_files_to_orthanc(node_factory, orthanc: OrthancPeer, mr_study) -> None:
    node = node_factory({"destinations": [orthanc_destination(orthanc)]})
    files = list(mr_study.series[0].files[:3])
    job_id = node.node.enqueue_send(files)
    job = wait_for(lambda: (j := node.index.job(job_id)) and j.state in ("done", "failed") and j, 20, "send job finished")
    assert job.state == "done", job.last_error
    for path in files:
        found = orthanc.find_instance(_sop_uid(path))
        assert found is not None and found["MainDicomTags"]["SOPInstanceUID"] == _sop_uid(path)
    assert node.index.sends(job_id)[0].last_status == "0x0000"


def test_sends_are_retried_until_orthanc_is_back(node_factory, orthanc: OrthancPeer, mr_study) -> None:
    orthanc.stop(graceful=False)
    node = node_factory({"destinations": [orthanc_destination(orthanc, initial_delay_s=0.2, max_delay_s=0.5)]})
    path = mr_study.series[0].files[0]
    job_id = node.node.enqueue_send([path])
    wait_for(lambda: node.index.sends(job_id)[0].attempt >= 2, 15, "at least two failed attempts")
    send = node.index.sends(job_id)[0]
    assert send.state == "pending" and send.last_status == "no-connection" and "cannot connect" in send.last_error
    assert node.index.job(job_id).state == "sending"
    orthanc.start()
    wait_for(lambda: node.index.job(job_id).state == "done", 20, "job done after Orthanc restarted")
    assert orthanc.find_instance(_sop_uid(path)) is not None


def test_max_attempts_fail_the_job_and_retry_requeues_it(node_factory, orthanc: OrthancPeer, mr_study, tmp_path) -> None:
    orthanc.stop(graceful=False)
    destination = orthanc_destination(orthanc, max_attempts=2, initial_delay_s=0.1, max_delay_s=0.1)
    node = node_factory({"destinations": [destination]})
    path = mr_study.series[0].files[0]
    job_id = node.node.enqueue_send([path])
    job = wait_for(lambda: (j := node.index.job(job_id)).state == "failed" and j, 15, "job failed after 2 attempts")
    assert node.index.sends(job_id)[0].attempt == 2 and job.stage == "send"
    config_file = tmp_path / "node.toml"
    config_file.write_text(dump_toml(node.config))
    status = _bianque("status", "--config", str(config_file))
    assert status.returncode == 0 and "failed" in status.stdout and "cannot connect" in status.stdout
    as_json = _bianque("status", "--json", "--config", str(config_file))
    import json

    rows = json.loads(as_json.stdout)
    assert rows[0]["id"] == job_id and rows[0]["state"] == "failed"
    assert rows[0]["sends"][0]["destination"] == "orthanc" and rows[0]["sends"][0]["attempt"] == 2
    orthanc.start()
    assert _bianque("retry", "--config", str(config_file), "999999").returncode == 1
    retried = _bianque("retry", "--config", str(config_file), str(job_id))
    assert retried.returncode == 0, retried.stdout
    wait_for(lambda: node.index.job(job_id).state == "done", 20, "job done after bianque retry")
    assert orthanc.find_instance(_sop_uid(path)) is not None


def test_permanent_refusal_is_not_retried(node_factory, mr_study, tmp_path: Path) -> None:
    # A pynetdicom peer that accepts only Verification: the MR SOP class is refused (like 0x0122).
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    peer = AE(ae_title="ECHOONLY")
    peer.add_supported_context(Verification)
    port = free_port()
    server = peer.start_server(("127.0.0.1", port), block=False)
    try:
        destination = {"name": "echoonly", "ae_title": "ECHOONLY", "host": "127.0.0.1", "port": port,
                       "retry": {"max_attempts": 10, "initial_delay_s": 0.1, "max_delay_s": 0.1}}
        node = node_factory({"destinations": [destination]})
        job_id = node.node.enqueue_send([mr_study.series[0].files[0]])
        job = wait_for(lambda: (j := node.index.job(job_id)).state == "failed" and j, 15, "job failed at once")
        send = node.index.sends(job_id)[0]
        assert send.attempt == 1 and send.last_status == "0x0122" and "accepted none of the proposed SOP classes" in send.last_error
        config_file = tmp_path / "node.toml"
        config_file.write_text(dump_toml(node.config))
        echo = _bianque("echo", "--config", str(config_file), "echoonly")
        assert echo.returncode == 0 and "succeeded" in echo.stdout
    finally:
        server.shutdown()


def test_echo_command_reports_failures(orthanc: OrthancPeer, tmp_path: Path) -> None:
    config = {"destinations": [orthanc_destination(orthanc), {"name": "nowhere", "ae_title": "NOBODY",
                                                              "host": "127.0.0.1", "port": free_port()}]}
    from peers import node_test_config

    config_file = tmp_path / "node.toml"
    config_file.write_text(dump_toml(node_test_config(tmp_path, config)))
    ok = _bianque("echo", "--config", str(config_file), "orthanc")
    assert ok.returncode == 0 and "succeeded" in ok.stdout, ok.stdout + ok.stderr
    down = _bianque("echo", "--config", str(config_file), "nowhere")
    assert down.returncode == 1 and "cannot connect" in down.stdout
    unknown = _bianque("echo", "--config", str(config_file), "missing")
    assert unknown.returncode == 1 and "no destination named" in unknown.stdout


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(initial_delay_s=10, max_delay_s=100, multiplier=2, jitter=0.2)
    rng = random.Random(1)
    for attempt, base in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = [retry_delay_s(policy, attempt, rng) for _ in range(200)]
        assert min(delays) >= base * 0.8 - 1e-9 and max(delays) <= min(100, base * 1.2) + 1e-9
        assert max(delays) - min(delays) > 0  # jitter is applied
    with pytest.raises(ValueError):
        retry_delay_s(policy, 0)
