"""The pipeline measured against the phantom's ground truth with an oracle segmenter.

The oracle hands the pipeline the phantom's true label map (resampled onto the model grid as a network
output would be), so everything after the network runs for real: slice selection, the model-grid ->
source-grid mapping, quantitation, SEG/SR encoding. This checks the pipeline's geometry and units
independently of how well the shipped weights segment.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pydicom
import pytest
from e2e_helpers import disc_heights_mm, plumbing_weights

from dicom_node.pipeline import PipelineSettings, StudyPipeline
from inference.synthetic.study import write_study


class OracleSegmenter:
    """Prepares slices like the real Segmenter, but 'predicts' the true label map of known slices."""

    def __init__(self, real, truth_by_sop: dict[str, np.ndarray]) -> None:
        self.real = real
        self.truth = truth_by_sop
        self.identity = real.identity
        self.input_size = real.input_size
        self.precision = real.precision
        self.fp16_overflows = 0

    def prepare(self, ds, frame_index=None):
        return self.real.prepare(ds, frame_index)

    def segment(self, prepared):
        results = []
        for prep in prepared:
            t = prep.transform
            truth = self.truth.get(prep.sop_instance_uid)
            model = np.zeros((t.model_size, t.model_size), np.uint8)
            if truth is not None:
                canon = t.source_to_canonical_array(truth)
                nh, nw = t.resized_shape
                resized = cv2.resize(canon, (nw, nh), interpolation=cv2.INTER_NEAREST)
                model[t.offset[0]:t.offset[0] + nh, t.offset[1]:t.offset[1] + nw] = resized
            results.append(SimpleNamespace(label_map=t.labels_to_source(model), label_map_model=model,
                                           postprocess_warnings=()))
        return results


@pytest.fixture(scope="module")
def oracle_weights_file(tmp_path_factory):
    """Plumbing weights on the shipped network's 512 grid, so the oracle's resampling stays sub-pixel."""
    return plumbing_weights(tmp_path_factory.mktemp("oracle") / "oracle-light-512.pt", input_size=512)


@pytest.fixture(scope="module")
def oracle_pipeline(oracle_weights_file):
    return lambda truth: StudyPipeline(
        PipelineSettings(weights=str(oracle_weights_file), device="cpu", cpu_threads=1),
        segmenter=OracleSegmenter(
            StudyPipeline(PipelineSettings(weights=str(oracle_weights_file), device="cpu", cpu_threads=1)).segmenter,
            truth,
        ),
    )


@pytest.fixture(scope="module")
def clean_study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("clean"), seed=5, clean=True, n_sagittal_slices=3, n_t1_slices=1,
                       n_axial_slices=1)


@pytest.fixture(scope="module")
def clean_outcome(oracle_pipeline, clean_study, tmp_path_factory):
    pipeline = oracle_pipeline({clean_study.mid_sagittal_sop_uid: clean_study.phantom.labels})
    return pipeline.process_files([clean_study.out_dir], tmp_path_factory.mktemp("out"))


def test_sr_disc_heights_equal_quantitation_on_the_source_grid(clean_study, clean_outcome):
    """The pipeline (model grid 512, mapping, SR encoding) adds at most 0.4 mm to what quantitation
    measures directly on the true source-grid label map."""
    from quantitation import quantify_slice

    phantom = clean_study.phantom
    image8 = (np.clip(phantom.image / phantom.image.max(), 0, 1) * 255).astype(np.uint8)
    direct = {d.level: d.dh_mm for d in quantify_slice(phantom.labels, image8, phantom.pixel_spacing_mm).discs}
    assert clean_outcome.slice.sop_instance_uid == clean_study.mid_sagittal_sop_uid
    heights = disc_heights_mm(pydicom.dcmread(clean_outcome.output("sr").path))
    assert set(heights) == set(direct)
    for level, value in heights.items():
        assert abs(value - direct[level]) <= 0.4, (level, value, direct[level])
    # disc axis mid-points, mapped back to the source grid, land near the drawn ones
    for disc, true in zip(clean_outcome.quantitation.discs, phantom.discs, strict=True):
        assert np.hypot(*np.subtract(disc.anterior_mid, true.anterior_mid)) < 3.0, disc.level
        assert np.hypot(*np.subtract(disc.posterior_mid, true.posterior_mid)) < 3.0, disc.level


def test_sr_disc_heights_match_phantom_truth_with_true_labels(clean_study, clean_outcome):
    """With the true label map (area-rasterised by the phantom), the SR's DH is the drawn height."""
    heights = disc_heights_mm(pydicom.dcmread(clean_outcome.output("sr").path))
    truth = {d.level: d.height_mm for d in clean_study.phantom.discs}
    for level, value in heights.items():
        assert abs(value - truth[level]) <= 0.5, (level, value, truth[level])


def test_compressed_transfer_syntaxes_give_the_same_results(oracle_pipeline, tmp_path):
    documents = {}
    for syntax in ("explicit", "jpeg2000-lossless", "jpegls-lossless"):
        manifest = write_study(tmp_path / syntax, seed=9, rows=256, cols=256, transfer_syntax=syntax,
                               n_sagittal_slices=3, n_t1_slices=1, n_axial_slices=1, deterministic_uids=True)
        src = pydicom.dcmread(manifest.mid_sagittal_file, stop_before_pixels=True)
        assert src.SOPInstanceUID == manifest.mid_sagittal_sop_uid  # compression keeps the instance's UID
        pipeline = oracle_pipeline({manifest.mid_sagittal_sop_uid: manifest.phantom.labels})
        outcome = pipeline.process_files([manifest.out_dir], tmp_path / f"out-{syntax}")
        assert outcome.slice.path == manifest.mid_sagittal_file
        assert src.file_meta.TransferSyntaxUID.name.lower().replace(" ", "").startswith(
            {"explicit": "explicitvr", "jpeg2000-lossless": "jpeg2000", "jpegls-lossless": "jpeg-ls"}[syntax])
        documents[syntax] = json.loads(outcome.results_json.read_text())["discs"]
        assert any(d["measurements"].get("delta_si") for d in documents[syntax])
    assert documents["jpeg2000-lossless"] == documents["explicit"]
    assert documents["jpegls-lossless"] == documents["explicit"]


def test_enhanced_mr_multiframe_gives_the_same_heights_as_classic(oracle_pipeline, tmp_path):
    import highdicom as hd
    from pydicom.uid import generate_uid

    classic = write_study(tmp_path / "classic", seed=5, rows=256, cols=256, clean=True, n_sagittal_slices=5,
                          n_t1_slices=1, n_axial_slices=1)
    truth = classic.phantom.labels
    base = oracle_pipeline({classic.mid_sagittal_sop_uid: truth}).process_files([classic.out_dir], tmp_path / "o1")
    frames = [pydicom.dcmread(f) for f in classic.series_by_kind("sag_t2").files]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=frames, series_instance_uid=generate_uid(), series_number=20,
        sop_instance_uid=generate_uid(), instance_number=1)
    folder = tmp_path / "enhanced"
    folder.mkdir()
    enhanced.save_as(folder / "enhanced.dcm")
    outcome = oracle_pipeline({str(enhanced.SOPInstanceUID): truth}).process_files([folder], tmp_path / "o2")
    assert outcome.slice.frame_index is not None
    frame_sop = enhanced.PerFrameFunctionalGroupsSequence[outcome.slice.frame_index]
    position = [float(v) for v in frame_sop.PlanePositionSequence[0].ImagePositionPatient]
    assert abs(position[0]) < 1e-6  # the middle slice (x = 0) of the stack
    seg = pydicom.dcmread(outcome.output("seg").path)
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == enhanced.SOPInstanceUID
    heights = disc_heights_mm(pydicom.dcmread(outcome.output("sr").path))
    assert heights == pytest.approx(disc_heights_mm(pydicom.dcmread(base.output("sr").path)), abs=1e-6)


def test_best_mode_takes_the_slice_with_the_complete_spine(oracle_pipeline, plumbing_weights_file, tmp_path):
    from dicom_node.selection import SelectionRules

    manifest = write_study(tmp_path / "study", seed=8, rows=256, cols=256, clean=True, n_sagittal_slices=5,
                           n_t1_slices=1, n_axial_slices=1)
    t2 = manifest.series_by_kind("sag_t2")
    labels = manifest.phantom.labels
    partial = labels.copy()
    partial[np.isin(partial, (3, 5))] = 0  # two discs missing
    off_centre = t2.sop_instance_uids[manifest.mid_sagittal_index + 1]
    truth = {manifest.mid_sagittal_sop_uid: partial, off_centre: labels}
    oracle = oracle_pipeline(truth).segmenter
    settings = PipelineSettings(weights=str(plumbing_weights_file), device="cpu", cpu_threads=1,
                                selection=SelectionRules(mid_slice="best", best_candidates=3))
    outcome = StudyPipeline(settings, segmenter=oracle).process_files([manifest.out_dir], tmp_path / "out")
    assert outcome.slice.sop_instance_uid == off_centre
