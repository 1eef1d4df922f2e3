"""Phantom DICOM study writer: headers, geometry, reproducibility, transfer syntaxes, speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.synthetic.study import write_study


def test_study_headers_and_geometry(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    m = write_study(tmp_path, seed=3, patient_age="052Y", patient_sex="F", n_sagittal_slices=7)
    assert time.perf_counter() - t0 < 2.0
    kinds = {s.kind: s for s in m.series}
    assert set(kinds) == {"sag_t2", "sag_t1", "ax_t2"}
    assert len(kinds["sag_t2"].files) == 7 and m.mid_sagittal_index == 3
    seen_series = set()
    for s in m.series:
        xs = []
        for f, sop in zip(s.files, s.sop_instance_uids):
            ds = pydicom.dcmread(f)
            assert ds.StudyInstanceUID == m.study_uid and ds.SeriesInstanceUID == s.series_uid
            assert ds.SOPInstanceUID == sop and ds.FrameOfReferenceUID == m.frame_of_reference_uid
            assert ds.SeriesDescription == s.description and ds.Modality == "MR"
            assert ds.PatientAge == "052Y" and ds.PatientSex == "F" and ds.BitsAllocated == 16
            if s.kind.startswith("sag"):
                assert [float(v) for v in ds.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
                xs.append(float(ds.ImagePositionPatient[0]))
            else:
                assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        if xs:
            assert np.allclose(np.diff(xs), 4.0)
        seen_series.add(s.series_uid)
    assert len(seen_series) == 3
    t2 = pydicom.dcmread(kinds["sag_t2"].files[0])
    t1 = pydicom.dcmread(kinds["sag_t1"].files[0])
    assert float(t2.EchoTime) > 80 and float(t2.RepetitionTime) > 2000 and t2.SeriesDescription == "T2 TSE SAG"
    assert float(t1.EchoTime) < 20 and float(t1.RepetitionTime) < 800 and t1.SeriesDescription == "T1 TSE SAG"
    mid = pydicom.dcmread(m.mid_sagittal_file)
    assert mid.SOPInstanceUID == m.mid_sagittal_sop_uid and float(mid.ImagePositionPatient[0]) == 0.0
    assert np.isclose(float(mid.PixelSpacing[0]), m.phantom.pixel_spacing_mm[0], atol=1e-5)
    expected = np.clip(np.round(m.phantom.image * m.stored_scale), 0, 65535).astype(np.uint16)
    assert np.array_equal(mid.pixel_array, expected)
    # the CSF of the mid slice is brighter on T2 than on T1
    t1_mid = pydicom.dcmread(kinds["sag_t1"].files[len(kinds["sag_t1"].files) // 2]).pixel_array
    csf = m.phantom.labels == 1
    assert mid.pixel_array[csf].mean() > 2 * t1_mid[csf].mean()


def test_reproducible_pixels_and_deterministic_uids(tmp_path: Path) -> None:
    a = write_study(tmp_path / "a", seed=9, n_sagittal_slices=3, n_t1_slices=1, n_axial_slices=1, deterministic_uids=True)
    b = write_study(tmp_path / "b", seed=9, n_sagittal_slices=3, n_t1_slices=1, n_axial_slices=1, deterministic_uids=True)
    c = write_study(tmp_path / "c", seed=9, n_sagittal_slices=3, n_t1_slices=1, n_axial_slices=1)
    assert a.study_uid == b.study_uid and a.study_uid != c.study_uid
    for fa, fb in zip(a.all_files, b.all_files):
        assert np.array_equal(pydicom.dcmread(fa).pixel_array, pydicom.dcmread(fb).pixel_array)


@pytest.mark.parametrize("syntax,uid", [
    ("rle", "1.2.840.10008.1.2.5"),
    ("jpeg2000-lossless", "1.2.840.10008.1.2.4.90"),
    ("jpegls-lossless", "1.2.840.10008.1.2.4.80"),
])
def test_lossless_transfer_syntaxes_roundtrip(tmp_path: Path, syntax: str, uid: str) -> None:
    m = write_study(tmp_path, seed=2, transfer_syntax=syntax, n_sagittal_slices=1, n_t1_slices=1, n_axial_slices=1, rows=256, cols=256)
    ds = pydicom.dcmread(m.mid_sagittal_file)
    assert ds.file_meta.TransferSyntaxUID == uid
    expected = np.clip(np.round(m.phantom.image * m.stored_scale), 0, 65535).astype(np.uint16)
    assert np.array_equal(ds.pixel_array, expected)


def test_bad_arguments_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="transfer_syntax"):
        write_study(tmp_path, transfer_syntax="jpeg-baseline")
    with pytest.raises(ValueError, match="odd"):
        write_study(tmp_path, n_sagittal_slices=4)
