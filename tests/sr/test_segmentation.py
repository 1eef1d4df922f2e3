"""BINARY SEG: segments match the label map, geometry overlays the source for any orientation."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
import pytest
from sr_inputs import ORIENTATIONS, draw_label_map

from sr_templates import OutputEncodingError, build_segmentation, codes


def _roundtrip(seg: pydicom.Dataset) -> hd.seg.Segmentation:
    buffer = BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return hd.seg.segread(BytesIO(buffer.getvalue()))


def _as_label_values(seg: hd.seg.Segmentation, segment_map: np.ndarray) -> np.ndarray:
    """Translate segment numbers back to our label-map values via each segment's property type."""
    by_type = {(s.property_type.value, s.property_type.scheme_designator): s.label_value
               for s in codes.STRUCTURES.values()}
    out = np.zeros(segment_map.shape, dtype=np.uint8)
    for number in seg.segment_numbers:
        desc = seg.get_segment_description(number)
        ptype = desc.segmented_property_type
        out[segment_map == number] = by_type[(ptype.value, ptype.scheme_designator)]
    return out


def _patient_centroids(label_map: np.ndarray, ipp: np.ndarray, iop: np.ndarray, spacing: np.ndarray
                       ) -> dict[int, np.ndarray]:
    """Patient coordinates of each class centroid computed from the SOURCE geometry (PS3.3 C.7.6.2.1.1)."""
    out = {}
    for value in (int(v) for v in np.unique(label_map) if v):
        rows, cols = np.nonzero(label_map == value)
        r, c = rows.mean(), cols.mean()
        out[value] = ipp + c * spacing[1] * iop[:3] + r * spacing[0] * iop[3:]
    return out


def _seg_centroids(seg: hd.seg.Segmentation) -> dict[int, np.ndarray]:
    """Patient coordinates of each class centroid computed from the SEG's own geometry (highdicom volume)."""
    volume = seg.get_volume(combine_segments=True)
    labels = _as_label_values(seg, volume.array)
    out = {}
    for value in (int(v) for v in np.unique(labels) if v):
        idx = np.argwhere(labels == value).mean(axis=0)
        out[value] = (volume.affine @ np.append(idx, 1.0))[:3]
    return out


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_single_frame_seg_matches_label_map_and_overlays_source(orientation, mr_factory, label_map, algorithm):
    mr = mr_factory(orientation)
    seg = _roundtrip(build_segmentation(mr, label_map, algorithm, uid_seed="job-1"))

    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
    assert seg.FrameOfReferenceUID == mr.FrameOfReferenceUID
    assert seg.StudyInstanceUID == mr.StudyInstanceUID
    assert seg.SeriesInstanceUID != mr.SeriesInstanceUID
    pixels = seg.get_pixels_by_source_instance([mr.SOPInstanceUID], combine_segments=True)[0]
    np.testing.assert_array_equal(_as_label_values(seg, pixels), label_map)

    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                               mr.ImageOrientationPatient)
    np.testing.assert_allclose(shared.PixelMeasuresSequence[0].PixelSpacing, mr.PixelSpacing)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient, mr.ImagePositionPatient)
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == mr.SOPInstanceUID
        assert ref.SpatialLocationsPreserved == "YES"

    expected = _patient_centroids(label_map, np.asarray(mr.ImagePositionPatient, float),
                                  np.asarray(mr.ImageOrientationPatient, float), np.asarray(mr.PixelSpacing, float))
    got = _seg_centroids(seg)
    assert got.keys() == expected.keys()
    for value, point in expected.items():
        np.testing.assert_allclose(got[value], point, atol=1e-3, err_msg=f"class {value} misplaced ({orientation})")


@pytest.mark.parametrize("orientation", ["sagittal", "oblique"])
def test_enhanced_mr_frame_seg_references_that_frame(orientation, enhanced_factory, label_map, algorithm):
    emr = enhanced_factory(orientation, n_frames=3, analysed_frame=1)
    seg = _roundtrip(build_segmentation(emr, label_map, algorithm, frame_index=1, uid_seed="job-1"))

    assert seg.NumberOfFrames == 13  # one frame per present segment, all on the analysed plane
    pixels = seg.get_pixels_by_source_frame(emr.SOPInstanceUID, [2], combine_segments=True)[0]
    np.testing.assert_array_equal(_as_label_values(seg, pixels), label_map)
    frame_ipp = emr.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0].ImagePositionPatient
    for frame in seg.PerFrameFunctionalGroupsSequence:
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient, frame_ipp)
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert (ref.ReferencedSOPInstanceUID, int(ref.ReferencedFrameNumber)) == (emr.SOPInstanceUID, 2)
    iop = np.asarray(emr.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient)
    expected = _patient_centroids(label_map, np.asarray(frame_ipp, float), iop, np.array([0.9, 0.9]))
    got = _seg_centroids(seg)
    for value, point in expected.items():
        np.testing.assert_allclose(got[value], point, atol=1e-3)


def test_only_present_structures_become_segments_with_codes_and_algorithm(mr_slice, algorithm):
    label_map = draw_label_map(omit=(11, 13))  # no L5/S1 disc, no presacral fat
    seg = _roundtrip(build_segmentation(mr_slice, label_map, algorithm, uid_seed="job-1"))

    assert seg.segment_numbers == list(range(1, 12))
    types = [seg.get_segment_description(n).segmented_property_type for n in seg.segment_numbers]
    assert ("715056000", "SCT") not in {(t.value, t.scheme_designator) for t in types}
    assert ("55603005", "SCT") not in {(t.value, t.scheme_designator) for t in types}
    assert seg.get_segment_numbers(segmented_property_type=codes.DISC_CODES["L4/L5"]) == [9]
    assert seg.get_segment_numbers(segmented_property_type=codes.SACRUM) == [11]
    for item in seg.SegmentSequence:
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert item.SegmentAlgorithmName == "BianqueNet"
        algo = item.SegmentationAlgorithmIdentificationSequence[0]
        assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("BianqueNet", "1.2.0")
        assert algo.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
        assert "variant=big_apex" in algo.AlgorithmParameters and "weights_sha256=" + "ab" * 32 in algo.AlgorithmParameters
        assert len(item.RecommendedDisplayCIELabValue) == 3
        assert item.TrackingUID and item.TrackingID
    l4 = seg.get_segment_description(9)
    assert l4.segment_label == "L4/L5 disc"
    assert l4.segmented_property_category.value == "91723000"
    assert seg.SeriesDescription == "BianqueNet disc quantitation - segmentation"
    assert seg.ManufacturerModelName == "BianqueNet big_apex"


def test_uids_are_deterministic_per_seed(mr_slice, label_map, algorithm):
    a = build_segmentation(mr_slice, label_map, algorithm, uid_seed="study-A|job-v1")
    b = build_segmentation(mr_slice, label_map, algorithm, uid_seed="study-A|job-v1")
    c = build_segmentation(mr_slice, label_map, algorithm, uid_seed="study-A|job-v2")
    assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)
    assert [s.TrackingUID for s in a.SegmentSequence] == [s.TrackingUID for s in b.SegmentSequence]
    assert a.SOPInstanceUID != c.SOPInstanceUID and a.SeriesInstanceUID != c.SeriesInstanceUID
    assert pydicom.uid.UID(a.SOPInstanceUID).is_valid


def test_bad_inputs_raise_clear_errors(mr_slice, enhanced_factory, label_map, algorithm):
    with pytest.raises(OutputEncodingError, match="does not match the source grid"):
        build_segmentation(mr_slice, label_map.T, algorithm, uid_seed="x")
    with pytest.raises(OutputEncodingError, match="0..13"):
        build_segmentation(mr_slice, label_map + 20, algorithm, uid_seed="x")
    with pytest.raises(OutputEncodingError, match="no structure"):
        build_segmentation(mr_slice, np.zeros_like(label_map), algorithm, uid_seed="x")
    with pytest.raises(OutputEncodingError, match="frame_index is required"):
        build_segmentation(enhanced_factory(), label_map, algorithm, uid_seed="x")
    with pytest.raises(OutputEncodingError, match="outside"):
        build_segmentation(enhanced_factory(n_frames=3), label_map, algorithm, frame_index=3, uid_seed="x")
    no_for = mr_slice.copy()
    del no_for.FrameOfReferenceUID
    with pytest.raises(OutputEncodingError, match="Frame of Reference"):
        build_segmentation(no_for, label_map, algorithm, uid_seed="x")


def test_real_vendor_enhanced_mr_with_per_frame_geometry(real_philips_enhanced, algorithm):
    """Philips keeps Pixel Measures / Plane Orientation per frame; the SEG must still sit on frame 89."""
    emr = real_philips_enhanced
    label_map = np.zeros((emr.Rows, emr.Columns), dtype=np.uint8)
    label_map[40:136, 60:140] = draw_label_map()
    seg = _roundtrip(build_segmentation(emr, label_map, algorithm, frame_index=88, uid_seed="job-1"))
    pixels = seg.get_pixels_by_source_frame(emr.SOPInstanceUID, [89], combine_segments=True)[0]
    np.testing.assert_array_equal(_as_label_values(seg, pixels), label_map)
    source_frame = emr.PerFrameFunctionalGroupsSequence[88]
    np.testing.assert_allclose(seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
                               source_frame.PlaneOrientationSequence[0].ImageOrientationPatient)
    np.testing.assert_allclose(seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient,
                               source_frame.PlanePositionSequence[0].ImagePositionPatient)


def test_real_single_frame_mr_sample(real_mr_small, algorithm):
    label_map = np.zeros((64, 64), dtype=np.uint8)
    label_map[:48, :40] = draw_label_map()[::2, ::2]
    seg = _roundtrip(build_segmentation(real_mr_small, label_map, algorithm, uid_seed="job-1"))
    pixels = seg.get_pixels_by_source_instance([real_mr_small.SOPInstanceUID], combine_segments=True)[0]
    np.testing.assert_array_equal(_as_label_values(seg, pixels), label_map)
    # the source had no Spacing Between Slices: the slice thickness is used, not highdicom's 1.0 guess
    assert float(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices) == 0.8
