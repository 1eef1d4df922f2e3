"""Destinations that read different SR IODs: the job writes the report once per kind, each destination
gets only its own kind."""

from __future__ import annotations

from pathlib import Path

import pydicom

from dicom_node.config import validate_config
from dicom_node.pipeline import PipelineSettings, StudyPipeline
from dicom_node.scu import SR_CLASS_BY_KIND, _FileInfo, files_for_destination
from inference.synthetic.study import write_study

ENHANCED, COMPREHENSIVE = SR_CLASS_BY_KIND["enhanced"], SR_CLASS_BY_KIND["comprehensive"]
SEG = "1.2.840.10008.5.1.4.1.1.66.4"


def _config(plumbing_weights_file: Path):
    return validate_config({
        "model": {"weights": str(plumbing_weights_file), "device": "cpu", "cpu_threads": 1},
        "destinations": [
            {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 104},
            {"name": "viewer", "ae_title": "VIEWER", "host": "127.0.0.1", "port": 105, "sr_kind": "comprehensive"},
        ],
    })


def test_settings_ask_for_every_destination_kind(plumbing_weights_file) -> None:
    settings = PipelineSettings.from_config(_config(plumbing_weights_file))
    assert settings.sr_kind == "enhanced" and settings.extra_sr_kinds == ("comprehensive",)


def test_job_writes_one_sr_per_kind_with_the_same_content(plumbing_weights_file, tmp_path) -> None:
    study = write_study(tmp_path / "study", seed=4, rows=256, cols=256, n_sagittal_slices=3, n_t1_slices=1,
                        n_axial_slices=1)
    pipeline = StudyPipeline(PipelineSettings.from_config(_config(plumbing_weights_file)))
    outcome = pipeline.process_files([study.out_dir], tmp_path / "out", version=1)
    assert [o.kind for o in outcome.outputs] == ["seg", "sr", "report", "sr-comprehensive"]
    enhanced = pydicom.dcmread(outcome.output("sr").path)
    comprehensive = pydicom.dcmread(outcome.output("sr-comprehensive").path)
    assert (enhanced.SOPClassUID, comprehensive.SOPClassUID) == (ENHANCED, COMPREHENSIVE)
    assert enhanced.SOPInstanceUID != comprehensive.SOPInstanceUID
    assert enhanced.StudyInstanceUID == comprehensive.StudyInstanceUID == study.study_uid
    assert len(enhanced.ContentSequence) == len(comprehensive.ContentSequence) > 0
    assert _tracking_uids(enhanced) == _tracking_uids(comprehensive) != set()  # the same findings


def _tracking_uids(ds) -> set[str]:
    found: set[str] = set()
    for item in ds.ContentSequence:
        if item.get("ValueType") == "UIDREF" and item.ConceptNameCodeSequence[0].CodeValue == "112040":
            found.add(str(item.UID))
        found |= _tracking_uids(item) if "ContentSequence" in item else set()
    return found


def test_each_destination_gets_only_its_sr_kind() -> None:
    def info(name: str, sop_class: str) -> _FileInfo:
        return _FileInfo(path=Path(name), sop_class_uid=sop_class, sop_instance_uid=name, transfer_syntax=None)

    job = [info("seg", SEG), info("sr", ENHANCED), info("sr-c", COMPREHENSIVE)]
    assert [f.path.name for f in files_for_destination(job, "enhanced")] == ["seg", "sr"]
    assert [f.path.name for f in files_for_destination(job, "comprehensive")] == ["seg", "sr-c"]
    # a job without the destination's kind (e.g. files queued by hand) is sent whole
    assert [f.path.name for f in files_for_destination(job, "comprehensive3d")] == ["seg", "sr", "sr-c"]
