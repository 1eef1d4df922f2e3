"""The outputs, C-STOREd with DCMTK into Orthanc, appear in the source study (Orthanc REST)."""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
from peers import peer_env, require_tool, wait_for
from sr_inputs import CHINESE_NAME, draw_label_map

from sr_templates import build_outputs

SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",
    "1.2.840.10008.5.1.4.1.1.88.22": "SR",
    "1.2.840.10008.5.1.4.1.1.7": "SC",
}


def test_outputs_stored_into_orthanc_show_in_source_study(orthanc, mr_slice, quantitation, algorithm, tmp_path):
    storescu = require_tool("/usr/bin/storescu")
    source_path = tmp_path / "source.dcm"
    mr_slice.save_as(source_path, enforce_file_format=True)
    orthanc.upload(source_path)

    outputs = build_outputs(mr_slice, draw_label_map(), quantitation, algorithm, uid_seed="orthanc-test")
    paths: list[Path] = []
    for i, ds in enumerate(outputs.datasets()):
        path = tmp_path / f"out{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    proc = subprocess.run([storescu, "-R", "-aec", orthanc.aet, orthanc.host, str(orthanc.dicom_port),
                           *map(str, paths)], capture_output=True, text=True, timeout=60, env=peer_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr

    expected = {ds.SOPInstanceUID: ds.SOPClassUID for ds in outputs.datasets()}

    def stored() -> list[dict]:
        found = orthanc.study_instances(mr_slice.StudyInstanceUID)
        uids = {i["MainDicomTags"].get("SOPInstanceUID") for i in found}
        return found if set(expected) <= uids else []

    instances = wait_for(stored, 30.0, "SEG, SR and report image did not appear in the source study in Orthanc")
    by_uid = {i["MainDicomTags"]["SOPInstanceUID"]: i["MainDicomTags"] for i in instances}
    assert mr_slice.SOPInstanceUID in by_uid
    for uid, sop_class in expected.items():
        tags = by_uid[uid]
        assert tags["SOPClassUID"] == sop_class, SOP_CLASSES[sop_class]
        assert tags["SeriesDescription"].startswith("BianqueNet disc quantitation")
        assert tags["SeriesInstanceUID"] != mr_slice.SeriesInstanceUID
    assert {by_uid[u]["Modality"] for u in expected} == {"SEG", "SR", "OT"}

    study = orthanc.post("/tools/lookup", mr_slice.StudyInstanceUID)[0]
    patient_tags = orthanc.get(f"/studies/{study['ID']}")["PatientMainDicomTags"]
    assert patient_tags["PatientName"] == CHINESE_NAME
    stored_sr = pydicom.dcmread(BytesIO(orthanc.instance_file(outputs.measurement_report.SOPInstanceUID)))
    assert str(stored_sr.PatientName) == CHINESE_NAME
