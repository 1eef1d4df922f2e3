"""The test peers themselves: Orthanc fixture, DCMTK lookup, generated study."""

from __future__ import annotations

import pydicom
import pytest

from peers import OrthancPeer, require_tool

pytestmark = pytest.mark.peers  # real DCMTK / Orthanc peers over loopback


def test_require_tool_finds_dcmtk_and_rejects_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_tool("/usr/bin/storescu").endswith("storescu") or pytest.skip("no dcmtk")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not found"):
        require_tool("/nonexistent/definitely-not-a-peer")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_tool("definitely-not-a-peer-xyz")


def test_generated_study_headers(mr_study) -> None:
    assert [s.description for s in mr_study.series] == ["SAG T2 TSE", "SAG T1 TSE", "AX T2 TSE"]
    assert len(mr_study.files) == 16
    ds = pydicom.dcmread(mr_study.series[0].files[3])
    assert ds.StudyInstanceUID == mr_study.study_uid
    assert [float(v) for v in ds.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    assert float(ds.EchoTime) > 80 and ds.PatientAge == "047Y"
    assert ds.pixel_array.shape == (64, 64)


def test_orthanc_upload_find_and_restart(orthanc: OrthancPeer, mr_study) -> None:
    first = mr_study.series[0]
    for path in first.files[:2]:
        orthanc.upload(path)
    assert set(orthanc.instances()) == set(first.sop_uids[:2])
    found = orthanc.find_instance(first.sop_uids[0])
    assert found is not None and found["MainDicomTags"]["SOPInstanceUID"] == first.sop_uids[0]
    assert orthanc.find_instance("1.2.3.4.5.6.7") is None
    listed = orthanc.study_instances(mr_study.study_uid)
    assert {i["MainDicomTags"]["SOPInstanceUID"] for i in listed} == set(first.sop_uids[:2])
    assert all(i["MainDicomTags"]["Modality"] == "MR" for i in listed)
    assert all(i["MainDicomTags"]["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.4" for i in listed)
    orthanc.register_modality("node", "BIANQUE", "127.0.0.1", 11112)
    orthanc.stop()
    assert not orthanc.running
    orthanc.start()
    assert set(orthanc.instances()) == set(first.sop_uids[:2])
    assert "node" in orthanc.get("/modalities")
    assert isinstance(orthanc.instance_file(first.sop_uids[0]), bytes)
