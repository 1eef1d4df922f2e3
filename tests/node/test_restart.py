"""Crash safety: SIGKILL in the middle of receiving, restart, nothing acknowledged is lost; unsent results resent."""

from __future__ import annotations

import signal
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage
from pynetdicom import AE

from dicom_node.config import load_config
from dicom_node.index import SpoolIndex
from peers import OrthancPeer, dicom_echo, orthanc_destination, start_node_process, wait_for

pytestmark = pytest.mark.peers  # real DCMTK / Orthanc peers over loopback


def test_sigkill_mid_receive_loses_no_acknowledged_instance(node_config_file, mr_study, tmp_path: Path) -> None:
    config_file = node_config_file({"completion": {"quiet_period_s": 1.0, "poll_interval_s": 0.2}})
    config = load_config(config_file, environ={})
    port = config.network.port
    log_file = tmp_path / "serve.log"
    process = start_node_process(config_file, log_file)
    try:
        wait_for(lambda: process.poll() is None and dicom_echo(port), 30, f"node listening; log: {log_file}")
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title="BIANQUE")
        assert assoc.is_established
        acknowledged: list[str] = []
        files = mr_study.series[0].files
        for number, path in enumerate(files):
            if number == 4:
                process.send_signal(signal.SIGKILL)  # in the middle of the association
                process.wait(timeout=10)
            try:
                rsp = assoc.send_c_store(pydicom.dcmread(path))
            except RuntimeError:  # the association is gone with the killed node
                break
            if rsp and rsp.get("Status") == 0:
                acknowledged.append(mr_study.series[0].sop_uids[number])
        if assoc.is_established:
            assoc.abort()
        assert len(acknowledged) == 4, acknowledged
        assert process.returncode == -signal.SIGKILL

        process = start_node_process(config_file, log_file)
        wait_for(lambda: process.poll() is None and dicom_echo(port), 30, "node listening again after restart")
        index = SpoolIndex(config.index_path)
        try:
            for sop_uid in acknowledged:
                stored = Path(config.spool.directory) / "studies" / mr_study.study_uid / mr_study.series[0].series_uid
                ds = pydicom.dcmread(stored / f"{sop_uid}.dcm")
                assert ds.SOPInstanceUID == sop_uid and len(ds.PixelData) == 64 * 64 * 2
                assert index.has_instance(sop_uid)
            series_uid = mr_study.series[0].series_uid
            wait_for(lambda: (s := index.series(series_uid)) is not None and s.state == "complete", 15,
                     "series completes after the restart")
            wait_for(lambda: [j for j in index.jobs() if j.state == "done"], 15, "study job done after restart")
            assert index.series(series_uid).instance_count == len(acknowledged)
        finally:
            index.close()
        assert not list(Path(config.spool.directory).rglob("*.tmp"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "node stopped" in log_file.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_unsent_results_are_sent_after_restart(node_factory, orthanc: OrthancPeer, mr_study, tmp_path: Path) -> None:
    orthanc.stop(graceful=False)
    spool = tmp_path / "shared-spool"
    settings = {"spool": {"directory": str(spool)},
                "destinations": [orthanc_destination(orthanc, initial_delay_s=0.2, max_delay_s=0.3)]}
    first = node_factory(settings)
    path = mr_study.series[1].files[0]
    job_id = first.node.enqueue_send([path])
    wait_for(lambda: first.index.sends(job_id)[0].attempt >= 1, 15, "one failed attempt")
    first.stop()
    orthanc.start()
    second = node_factory(settings)
    wait_for(lambda: second.index.job(job_id).state == "done", 20, "resent by the restarted node")
    sop_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    assert orthanc.find_instance(sop_uid) is not None


def test_sigterm_finishes_open_association_and_logs_json_without_phi(node_config_file, mr_study, tmp_path: Path) -> None:
    import json

    config_file = node_config_file({"logging": {"format": "json", "level": "INFO"}})
    config = load_config(config_file, environ={})
    port = config.network.port
    log_file = tmp_path / "serve.log"
    process = start_node_process(config_file, log_file)
    try:
        wait_for(lambda: process.poll() is None and dicom_echo(port), 30, "node listening")
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title="BIANQUE")
        assert assoc.is_established
        statuses = []
        for number, path in enumerate(mr_study.series[0].files):
            if number == 2:
                process.send_signal(signal.SIGTERM)
            statuses.append(assoc.send_c_store(pydicom.dcmread(path)).Status)
        assoc.release()
        assert statuses == [0] * len(mr_study.series[0].files)  # work in hand finished
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log_file.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "association accepted" in names and "association released" in names and "node stopped" in names
    stored = [e for e in events if e["event"] == "instance stored"]
    assert {e["sop_instance_uid"] for e in stored} == set(mr_study.series[0].sop_uids)
    assert all(e["calling_ae"] == "TESTSCU" and e["study_uid"] == mr_study.study_uid for e in stored)
    for phi in ("PHANTOM^LUMBAR", "PHANTOM001", "ACC0001"):
        assert phi not in text
    index = SpoolIndex(config.index_path)
    try:
        assert index.instance_count() == len(mr_study.series[0].files)
    finally:
        index.close()
    for db_file in config.index_path.parent.glob("index.sqlite3*"):
        assert b"PHANTOM" not in db_file.read_bytes()  # no patient identity in the index


def test_serve_reports_a_busy_port_and_exits(node_config_file, tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config_file = node_config_file({"network": {"port": busy.getsockname()[1]}})
        log_file = tmp_path / "serve.log"
        process = start_node_process(config_file, log_file)
        assert process.wait(timeout=60) == 1
    assert "cannot start the node" in log_file.read_text()
