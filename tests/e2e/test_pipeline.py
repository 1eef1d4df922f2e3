"""The processing job offline (no network): stages, idempotency, versions, failures, no-series studies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from dicom_node.pipeline import PipelineSettings, StageError, StudyPipeline
from dicom_node.selection import SelectionRules
from inference.synthetic.study import write_study


# creation times and highdicom's random Dimension Organization UID differ between runs; all else must not
VOLATILE = {"InstanceCreationTime", "InstanceCreationDate", "ContentTime", "ContentDate", "TimeOfSecondaryCapture",
            "DateOfSecondaryCapture", "ContributingEquipmentSequence", "DimensionOrganizationSequence",
            "DimensionIndexSequence"}


def _content(path: Path) -> list:
    ds = pydicom.dcmread(path)
    return [(e.tag, e.value if e.VR != "SQ" else str(e.value)) for e in ds if e.keyword not in VOLATILE]


@pytest.fixture(scope="module")
def phantom_study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("study"), seed=11, rows=256, cols=256, n_sagittal_slices=5,
                       n_t1_slices=3, n_axial_slices=2)


@pytest.fixture(scope="module")
def pipeline(plumbing_weights_file):
    return StudyPipeline(PipelineSettings(weights=str(plumbing_weights_file), device="cpu", cpu_threads=1))


def test_job_writes_seg_sr_report_and_results(pipeline, phantom_study, tmp_path):
    outcome = pipeline.process_files([phantom_study.out_dir], tmp_path / "out", version=1)
    assert outcome.slice is not None and outcome.slice.sop_instance_uid == phantom_study.mid_sagittal_sop_uid
    assert [o.kind for o in outcome.outputs] == ["seg", "sr", "report"]
    for output in outcome.outputs:
        ds = pydicom.dcmread(output.path)
        assert ds.StudyInstanceUID == phantom_study.study_uid
        assert ds.SOPInstanceUID == output.sop_instance_uid
    seg = pydicom.dcmread(outcome.output("seg").path)
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert referenced == phantom_study.mid_sagittal_sop_uid
    data = json.loads(outcome.results_json.read_text())
    assert [d["level"] for d in data["discs"]] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert data["source"]["sop_instance_uid"] == phantom_study.mid_sagittal_sop_uid
    assert data["outputs"] == {"seg": "seg.dcm", "sr": "sr.dcm", "report": "report.dcm"}
    assert {name for name, _ in outcome.timings_s} >= {"select", "load", "segment", "quantify", "encode", "write"}


def test_same_study_twice_gives_identical_outputs_new_version_new_uids(pipeline, phantom_study, tmp_path):
    first = pipeline.process_files([phantom_study.out_dir], tmp_path / "a", version=1)
    again = pipeline.process_files([phantom_study.out_dir], tmp_path / "b", version=1)
    for a, b in zip(first.outputs, again.outputs, strict=True):
        assert a.sop_instance_uid == b.sop_instance_uid and a.series_instance_uid == b.series_instance_uid
        assert _content(a.path) == _content(b.path), a.kind
    newer = pipeline.process_files([phantom_study.out_dir], tmp_path / "c", version=2)
    assert {o.sop_instance_uid for o in newer.outputs}.isdisjoint({o.sop_instance_uid for o in first.outputs})


def test_model_is_loaded_once_and_reused(pipeline, phantom_study, tmp_path):
    pipeline.process_files([phantom_study.out_dir], tmp_path / "x")
    segmenter = pipeline.segmenter
    pipeline.process_files([phantom_study.out_dir], tmp_path / "y")
    assert pipeline.segmenter is segmenter


def test_study_without_sagittal_t2_gives_no_seg_sr_and_a_reason(pipeline, phantom_study, tmp_path):
    folders = [phantom_study.series_by_kind("sag_t1").files[0].parent, phantom_study.series_by_kind("ax_t2").files[0].parent]
    outcome = pipeline.process_files(folders, tmp_path / "out")
    assert outcome.outputs == () and outcome.quantitation is None
    assert outcome.reason.startswith("no lumbar sagittal T2 series")
    assert "T1 weighted" in outcome.reason
    data = json.loads(outcome.results_json.read_text())
    assert data["discs"] == [] and data["selection"]["reason"] == outcome.reason


def test_no_series_sr_when_configured(plumbing_weights_file, phantom_study, tmp_path):
    pipe = StudyPipeline(PipelineSettings(weights=str(plumbing_weights_file), device="cpu", cpu_threads=1,
                                          no_series_sr=True))
    folder = phantom_study.series_by_kind("sag_t1").files[0].parent
    outcome = pipe.process_files([folder], tmp_path / "out")
    assert [o.kind for o in outcome.outputs] == ["no_series_sr"]
    sr = pydicom.dcmread(outcome.outputs[0].path)
    assert sr.StudyInstanceUID == phantom_study.study_uid
    assert "No lumbar sagittal T2" in str(sr)


def _truncate_pixels(path: Path) -> None:
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:100]  # headers fine, pixels unusable
    ds.save_as(path, enforce_file_format=True)


def test_unreadable_mid_slice_falls_back_to_its_neighbour(pipeline, phantom_study, tmp_path):
    study = tmp_path / "broken"
    shutil.copytree(phantom_study.out_dir, study)
    _truncate_pixels(study / phantom_study.mid_sagittal_file.relative_to(phantom_study.out_dir))
    outcome = pipeline.process_files([study], tmp_path / "out")
    t2 = phantom_study.series_by_kind("sag_t2")
    neighbours = {t2.sop_instance_uids[phantom_study.mid_sagittal_index - 1],
                  t2.sop_instance_uids[phantom_study.mid_sagittal_index + 1]}
    assert outcome.slice.sop_instance_uid in neighbours
    assert any("unusable" in w for w in outcome.warnings) and any("instead" in w for w in outcome.warnings)
    assert [o.kind for o in outcome.outputs] == ["seg", "sr", "report"]
    assert any("unusable" in w for w in json.loads(outcome.results_json.read_text())["warnings"])


def test_failure_names_the_stage(pipeline, phantom_study, tmp_path):
    study = tmp_path / "broken"
    shutil.copytree(phantom_study.out_dir, study)
    for path in phantom_study.series_by_kind("sag_t2").files:
        _truncate_pixels(study / path.relative_to(phantom_study.out_dir))
    with pytest.raises(StageError) as info:
        pipeline.process_files([study], tmp_path / "out")
    assert info.value.stage == "load"
    assert info.value.study_uid == phantom_study.study_uid
    assert "no usable slice" in str(info.value)


def test_best_mode_segments_central_slices(plumbing_weights_file, phantom_study, tmp_path):
    settings = PipelineSettings(weights=str(plumbing_weights_file), device="cpu", cpu_threads=1,
                                selection=SelectionRules(mid_slice="best", best_candidates=3))
    outcome = StudyPipeline(settings).process_files([phantom_study.out_dir], tmp_path / "out")
    # all-CSF maps score the same: the tie goes to the geometric centre
    assert outcome.slice.sop_instance_uid == phantom_study.mid_sagittal_sop_uid


def test_build_processor_refuses_missing_weights_at_start(tmp_path):
    from dicom_node.config import NodeConfig
    from dicom_node.pipeline import build_processor

    config = NodeConfig.model_validate({"model": {"weights": str(tmp_path / "nope.pt")}})
    with pytest.raises(FileNotFoundError, match="model weights not found"):
        build_processor(config)


def test_processor_runs_a_node_job(plumbing_weights_file, phantom_study, tmp_path):
    from dicom_node.config import NodeConfig
    from dicom_node.jobs import SeriesFiles, StudyJob
    from dicom_node.pipeline import build_processor

    config = NodeConfig.model_validate({"model": {"weights": str(plumbing_weights_file), "cpu_threads": 1}})
    processor = build_processor(config)
    series = tuple(
        SeriesFiles(series_uid=s.series_uid, modality="MR", description=s.description, series_number=s.series_number,
                    files=s.files, sop_uids=s.sop_instance_uids, sop_class_uids=("1.2.840.10008.5.1.4.1.1.4",) * len(s.files))
        for s in phantom_study.series
    )
    job = StudyJob(job_id=7, study_uid=phantom_study.study_uid, version=3, series=series, work_dir=tmp_path / "job")
    paths = processor(job)
    assert sorted(p.name for p in paths) == ["report.dcm", "seg.dcm", "sr.dcm"]
    assert all(p.parent == tmp_path / "job" for p in paths)


def test_model_loaded_event_names_the_precision_chosen_and_why(plumbing_weights_file, phantom_study, tmp_path):
    from structlog.testing import capture_logs

    from inference.precision import PRECISION_MODES

    fresh = StudyPipeline(PipelineSettings(weights=str(plumbing_weights_file), device="cpu", cpu_threads=1))
    with capture_logs() as events:
        fresh.process_files([phantom_study.out_dir], tmp_path / "out", version=1)
    loaded = [e for e in events if e["event"] == "model_loaded"]
    assert len(loaded) == 1
    event = loaded[0]
    assert event["precision"] in PRECISION_MODES and event["device"] == "cpu"
    # every candidate tried at start-up is reported with its label agreement; the chosen one passed the gate
    assert all(0.0 <= v <= 1.0 for v in event["precision_agreement"].values())
    if event["precision"] != "fp32":
        assert event["precision_agreement"][event["precision"]] >= 0.995


def test_level_assignment_comes_from_the_configuration(plumbing_weights_file, tmp_path):
    from dicom_node.commands.analyze import _settings, configure
    from dicom_node.config import load_config
    import argparse

    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[model]\nweights = "{plumbing_weights_file}"\ndevice = "cpu"\ncpu_threads = 1\n'
                   'level_assignment = "off"\n')
    settings = PipelineSettings.from_config(load_config(cfg))
    assert settings.level_assignment == "off"
    assert StudyPipeline(settings).segmenter.level_assignment == "off"
    default = PipelineSettings(weights=str(plumbing_weights_file))
    assert default.level_assignment == "sacrum"
    # outputs made with other levels must not share UIDs with the default's
    assert settings.fingerprint() != default.fingerprint()
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["x", "--out", str(tmp_path), "--config", str(cfg), "--levels", "sacrum"])
    assert _settings(args).level_assignment == "sacrum"
    with pytest.raises(Exception, match="level_assignment"):
        cfg.write_text('[model]\nlevel_assignment = "top"\n')
        load_config(cfg)


def _drop(study: Path, keywords: tuple[str, ...]) -> None:
    for path in study.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        for keyword in keywords:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path)


@pytest.mark.parametrize("keywords,expect", [
    # Type 2 / Type 3 geometry: the SEG takes the stack's spacing from ImagePositionPatient (4 mm here)
    (("SliceThickness", "SpacingBetweenSlices"), "spacing"),
    # Type 1, but implied by the MR Image Storage SOP class
    (("Modality",), "modality"),
    # de-identified: no birth date, accession number, study ID, referring physician
    (("PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName"), "empty"),
    # the description is gone: the protocol name still says T2 sagittal, and the reason says so
    (("SeriesDescription",), "protocol"),
])
def test_header_gaps_of_real_files_still_give_results(pipeline, phantom_study, tmp_path, keywords, expect):
    study = tmp_path / "gaps"
    shutil.copytree(phantom_study.out_dir, study)
    _drop(study, keywords)
    outcome = pipeline.process_files([study], tmp_path / "out")
    assert [o.kind for o in outcome.outputs] == ["seg", "sr", "report"], outcome.reason
    seg = pydicom.dcmread(outcome.outputs[0].path)
    if expect == "spacing":
        measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        assert float(measures.SpacingBetweenSlices) == pytest.approx(4.0)
        assert any("slice spacing 4 mm" in w for w in json.loads(outcome.results_json.read_text())["warnings"])
    elif expect == "empty":
        assert all(not seg.get(k) for k in keywords) and all(k in seg for k in keywords)
    elif expect == "protocol":
        assert "protocol name matches preferred pattern" in outcome.reason
    assert seg.StudyInstanceUID == phantom_study.study_uid
