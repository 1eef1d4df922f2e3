"""The shared test DICOM factory (tests/dicom_factory.py): valid files, consistent UIDs, exact geometry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_factory import AXIAL, SAGITTAL, StudyWriter, make_mr, mr_image, write_mr_study
from inference.synthetic.study import set_grey_pixels
from peers import require_tool


def test_node_study_passes_dciodvfy_and_its_uids_hold_together(tmp_path: Path) -> None:
    study = write_mr_study(tmp_path)
    dciodvfy = require_tool("dciodvfy")
    for series in study.series:
        out = subprocess.run([dciodvfy, str(series.files[0])], capture_output=True, text=True, timeout=60)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], f"{series.description}: {errors}"
    assert len(set(study.sop_uids)) == len(study.files) == 16
    for series in study.series:
        for path, sop_uid in zip(series.files, series.sop_uids):
            ds = pydicom.dcmread(path)
            assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == sop_uid
            assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (study.study_uid, series.series_uid)
            # the node's no-PHI tests are only meaningful if the identity is really in the files
            assert (str(ds.PatientName), ds.PatientID, ds.AccessionNumber) == ("PHANTOM^LUMBAR", "PHANTOM001", "ACC0001")


@pytest.mark.parametrize("orientation", [SAGITTAL, AXIAL])
def test_series_slices_step_along_the_normal_classic_and_enhanced(tmp_path: Path, orientation) -> None:
    writer = StudyWriter(tmp_path)
    classic = writer.series("t2", orientation=orientation, n_slices=5, spacing_mm=3.3, first_position=-6.6)
    (enhanced,) = writer.series("t2 enh", orientation=orientation, n_slices=5, spacing_mm=3.3, first_position=-6.6,
                                enhanced=True, te=90.0)
    normal = np.cross(orientation[:3], orientation[3:])
    expected = [np.array([0.0, -80.0, 60.0]) + normal * (-6.6 + 3.3 * i) for i in range(5)]
    for path, want in zip(classic, expected):
        ds = pydicom.dcmread(path)
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], want, atol=1e-6)
        assert float(ds.SliceLocation) == pytest.approx(float(np.dot(want - [0.0, -80.0, 60.0], normal)))
    multi = pydicom.dcmread(enhanced)
    assert multi.NumberOfFrames == 5 and multi.pixel_array.shape == (5, 16, 16)
    assert [int(frame.max()) for frame in multi.pixel_array] == [0, 1, 2, 3, 4]
    frames = multi.PerFrameFunctionalGroupsSequence
    for frame, want in zip(frames, expected):
        assert np.allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient], want, atol=1e-6)
        assert float(frame.MREchoSequence[0].EffectiveEchoTime) == 90.0
    assert [f.FrameContentSequence[0].InStackPositionNumber for f in frames] == [1, 2, 3, 4, 5]
    assert [r.series_uid for r in writer.written] == [pydicom.dcmread(classic[0]).SeriesInstanceUID,
                                                      multi.SeriesInstanceUID]


def test_mr_image_leaves_out_what_is_not_given_and_attributes_win() -> None:
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    bare = make_mr(img, None, spacing=None, window=None)
    assert not {"ImageOrientationPatient", "PixelSpacing", "WindowCenter", "EchoTime"} & set(bare.dir())
    assert np.array_equal(bare.pixel_array, img)
    ds = mr_image(img, te=95.0, tr=3000.0, EchoTime=80.0)
    assert float(ds.EchoTime) == 80.0 and float(ds.RepetitionTime) == 3000.0 and ds.ScanningSequence == "SE"


def test_grey_pixels_refuse_other_than_two_or_three_dimensions() -> None:
    with pytest.raises(ValueError, match="2-D or 3-D"):
        set_grey_pixels(pydicom.Dataset(), np.zeros(5))
