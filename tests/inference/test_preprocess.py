"""DICOM -> model input: windowing, reorientation, aspect-preserving resize, CLAHE, exact inverse."""

from __future__ import annotations

import gzip
import io
import itertools
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_factory import canonical_pattern, make_mr, reorient, source_iop  # noqa: E402

from inference.preprocess import NORM_MEAN, NORM_STD, PreprocessingError, prepare_slice  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom_mr_samples"
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
LAYOUTS = list(itertools.product([False, True], repeat=3))  # (transpose, flip_rows, flip_cols)


def _sample(rel: str) -> pydicom.Dataset:
    path = SAMPLES / rel
    assert path.is_file(), f"shared test data missing: {path}"
    if path.suffix == ".gz":
        return pydicom.dcmread(io.BytesIO(gzip.open(path).read()))
    return pydicom.dcmread(path)


def _oriented(layout: tuple[bool, bool, bool], spacing_canon: tuple[float, float] = (0.8, 0.8)):
    img, lab = canonical_pattern()
    t, fr, fc = layout
    spacing = spacing_canon[::-1] if t else spacing_canon
    ds = make_mr(reorient(img, t, fr, fc), source_iop(t, fr, fc), spacing=spacing)
    return ds, reorient(lab, t, fr, fc)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: "T%d_R%d_C%d" % l)
def test_every_layout_gives_the_same_model_image_and_labels_land_on_the_same_anatomy(layout) -> None:
    ref_ds, _ = _oriented((False, False, False), (0.6, 0.9))
    ref = prepare_slice(ref_ds, input_size=128)
    ds, source_labels = _oriented(layout, (0.6, 0.9))
    prep = prepare_slice(ds, input_size=128)
    assert (prep.transform.transpose, prep.transform.flip_rows, prep.transform.flip_cols) == layout
    assert np.array_equal(prep.model_image_8bit, ref.model_image_8bit)
    assert np.array_equal(prep.model_input, ref.model_input)
    # the head-anterior block sits in the top-left part of the model image
    assert prep.model_image_8bit[:64, :64].mean() > prep.model_image_8bit[64:, 64:].mean() - 60
    # a "segmentation" on the model grid (threshold of the model image) maps back onto the source labels
    seg = np.zeros((128, 128), np.uint8)
    seg[prep.model_image_8bit > 200] = 2  # block value 900 -> 255 after the 0..1000 window
    seg[(prep.model_image_8bit > 100) & (prep.model_image_8bit <= 200)] = 3  # bars value 600 -> 153
    back = prep.transform.labels_to_source(seg)
    assert back.shape == source_labels.shape
    for c in (2, 3):
        inter = np.logical_and(back == c, source_labels == c).sum()
        dice = 2 * inter / ((back == c).sum() + (source_labels == c).sum())
        assert dice > 0.93, (c, dice)


def test_points_round_trip_and_land_on_the_marker() -> None:
    for layout in LAYOUTS:
        ds, source_labels = _oriented(layout, (0.6, 0.9))
        tr = prepare_slice(ds, input_size=128).transform
        pts = np.array([[0.0, 0.0], [10.3, 20.7], [tr.source_shape[0] - 1, tr.source_shape[1] - 1]])
        assert np.allclose(tr.model_to_source(tr.source_to_model(pts)), pts)
        # centre of the head-anterior block (label 2) in the source maps into the block on the model grid
        rr, cc = np.nonzero(source_labels == 2)
        centre_model = tr.source_to_model(np.array([[rr.mean(), cc.mean()]]))[0]
        # canonical block centre (19.5, 13.5) on a 96x72 grid with spacing (0.6, 0.9) -> model
        s = 128 / max(96 * 0.6, 72 * 0.9)
        nh, nw = round(96 * 0.6 * s), round(72 * 0.9 * s)
        expected = [(19.5 + 0.5) * nh / 96 - 0.5 + (128 - nh) // 2, (13.5 + 0.5) * nw / 72 - 0.5 + (128 - nw) // 2]
        assert np.allclose(centre_model, expected, atol=1e-9), layout


def test_physical_aspect_is_kept_and_spacing_is_isotropic() -> None:
    rows, cols = 120, 40
    yy, xx = np.mgrid[:rows, :cols]
    # a 30 mm disc in physical space; row spacing 0.5 mm, col spacing 1.0 mm -> ellipse in pixels
    img = np.where(((yy - 60) * 0.5) ** 2 + ((xx - 20) * 1.0) ** 2 <= 15**2, 900, 50).astype(np.uint16)
    prep = prepare_slice(make_mr(img, SAGITTAL, spacing=(0.5, 1.0)), input_size=128)
    sr, sc = prep.model_pixel_spacing_mm
    assert sr == pytest.approx(sc, rel=0.02) and sr == pytest.approx(60 / 128, rel=0.02)
    r, c = np.nonzero(prep.model_image_8bit > 128)
    assert (r.max() - r.min()) == pytest.approx(c.max() - c.min(), abs=2)
    assert (r.max() - r.min() + 1) * sr == pytest.approx(30, abs=1.5)
    r0, c0, r1, c1 = prep.valid_bbox
    assert (r1 - r0, c1 - c0) == (128, 85) and prep.valid_mask.sum() == 128 * 85
    assert c0 == (128 - 85) // 2
    assert prep.model_image_8bit[~prep.valid_mask].max() == 0


def test_window_clahe_and_normalisation() -> None:
    ds = _sample("pylibjpeg-data/LittleEndianExplicit/MR_small.dcm")
    ds.ImageOrientationPatient = SAGITTAL
    prep = prepare_slice(ds, input_size=64)  # 64x64 source, no resampling
    assert prep.window_source == "file" and (prep.window_center, prep.window_width) == (600, 1600)
    raw = ds.pixel_array.astype(np.float64)
    expected = np.clip(np.rint(np.clip((raw - 599.5) / 1599 + 0.5, 0, 1) * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(prep.source_image_8bit, expected)
    assert np.array_equal(prep.model_image_8bit, expected)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(expected)
    want = (clahe.astype(np.float32) / 255 - NORM_MEAN) / NORM_STD
    assert prep.model_input.shape == (3, 64, 64) and prep.model_input.dtype == np.float32
    for ch in range(3):
        assert np.allclose(prep.model_input[ch], want, atol=1e-6)
    # no window in the file -> robust percentile window
    del ds.WindowCenter, ds.WindowWidth
    p2 = prepare_slice(ds, input_size=64)
    assert p2.window_source == "percentile"
    lo, hi = np.percentile(raw, [1, 99.5])
    assert p2.window_center == pytest.approx((lo + hi) / 2) and p2.window_width == pytest.approx(hi - lo)
    assert (p2.source_image_8bit == 255).mean() < 0.02 and (p2.source_image_8bit == 0).mean() < 0.03
    # MONOCHROME1 inverts
    ds.PhotometricInterpretation = "MONOCHROME1"
    p3 = prepare_slice(ds, input_size=64)
    assert np.array_equal(p3.source_image_8bit.astype(int), 255 - p2.source_image_8bit.astype(int))


@pytest.mark.parametrize(
    "rel",
    [
        "pylibjpeg-data/RLELossless/MR_small_RLE.dcm",
        "pylibjpeg-data/JPEG2000Lossless/MR_small_jp2klossless.dcm",
        "pylibjpeg-data/JPEGLSLossless/MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_compressed_transfer_syntaxes_decode_identically(rel: str) -> None:
    ref_ds = _sample("pylibjpeg-data/LittleEndianExplicit/MR_small.dcm")
    ds = _sample(rel)
    for d in (ref_ds, ds):
        d.ImageOrientationPatient = SAGITTAL
    a, b = prepare_slice(ref_ds, input_size=128), prepare_slice(ds, input_size=128)
    assert np.array_equal(a.model_image_8bit, b.model_image_8bit)
    assert np.array_equal(a.model_input, b.model_input)


@pytest.mark.parametrize(
    "rel",
    [
        "pylibjpeg-data/RLELossless/emri_small_RLE.dcm",
        "pylibjpeg-data/JPEG2000Lossless/emri_small_jpeg_2k_lossless.dcm",
        "pylibjpeg-data/JPEGLSLossless/emri_small_jpeg_ls_lossless.dcm",
        "pydicom-data/emri_small_big_endian.dcm",
    ],
)
def test_enhanced_mr_frames(rel: str) -> None:
    ref = _sample("pylibjpeg-data/LittleEndianExplicit/emri_small.dcm")
    ds = _sample(rel)
    for frame in (0, 7):
        a, b = prepare_slice(ref, frame, 64), prepare_slice(ds, frame, 64)
        assert a.frame_index == frame
        assert np.array_equal(a.source_image_8bit, b.source_image_8bit)
    assert prepare_slice(ds, None, 64).frame_index == 5  # middle frame by default
    frames = [prepare_slice(ref, f, 64).source_image_8bit for f in (0, 9)]
    assert not np.array_equal(*frames)
    with pytest.raises(PreprocessingError, match="frame 10 requested"):
        prepare_slice(ds, 10, 64)


def test_enhanced_mr_functional_groups_real_philips_header() -> None:
    ds = _sample("nibabel/philips_mprage.dcm.gz")
    prep = prepare_slice(ds, 3, 256)
    # per-frame Frame VOI LUT (19/32), Pixel Measures (1 mm) and a sagittal Plane Orientation
    assert prep.window_source == "file" and (prep.window_center, prep.window_width) == (19.0, 32.0)
    assert prep.spacing_known and prep.source_pixel_spacing_mm == (1.0, 1.0)
    assert prep.orientation_known and not prep.transform.transpose
    assert prep.model_pixel_spacing_mm == (1.0, 1.0)


def test_real_oblique_sagittal_sample_is_downsampled_with_its_spacing() -> None:
    ds = _sample("pylibjpeg-data/JPEG2000/MR2_J2KI.dcm")  # 1024x1024, 0.195 mm, lossy J2K
    prep = prepare_slice(ds, input_size=256)
    assert prep.model_input.shape == (3, 256, 256)
    assert prep.model_pixel_spacing_mm[0] == pytest.approx(1024 * 0.195313 / 256)
    # rows of this image run to -Z (feet) and columns along +Y mostly: no flips needed
    assert not (prep.transform.transpose or prep.transform.flip_rows or prep.transform.flip_cols)


def test_probabilities_to_source_matches_labels() -> None:
    ds, _ = _oriented((True, True, False), (0.6, 0.9))
    prep = prepare_slice(ds, input_size=128)
    seg = np.zeros((128, 128), np.int64)
    seg[prep.model_image_8bit > 200] = 2
    probs = np.eye(4, dtype=np.float32)[seg].transpose(2, 0, 1)
    src = prep.transform.probabilities_to_source(probs)
    assert src.shape == (4, *prep.transform.source_shape)
    assert np.allclose(src.sum(0), 1.0, atol=1e-5)
    agree = (src.argmax(0) == prep.transform.labels_to_source(seg)).mean()
    assert agree > 0.98


def test_bad_inputs_are_clear_errors() -> None:
    img, _ = canonical_pattern()
    with pytest.raises(PreprocessingError, match="not sagittal"):
        prepare_slice(make_mr(img, [1, 0, 0, 0, 1, 0]), input_size=128)
    with pytest.raises(ValueError, match="multiple of 64"):
        prepare_slice(make_mr(img, SAGITTAL), input_size=100)
    ds = make_mr(img, SAGITTAL)
    del ds.PixelData
    with pytest.raises(PreprocessingError, match="no pixel data"):
        prepare_slice(ds, input_size=128)
    # no orientation, no spacing: used as stored, 1 mm assumed
    prep = prepare_slice(make_mr(img, None, spacing=None), input_size=128)
    assert not prep.orientation_known and not prep.spacing_known
    # ... and the results say so
    assert any("1 mm per pixel was assumed" in n for n in prep.notes())
    assert any("no ImageOrientationPatient" in n for n in prep.notes())
    assert prepare_slice(make_mr(img, SAGITTAL), input_size=128).notes() == ()
