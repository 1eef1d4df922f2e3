"""TID 1500 report: every number that went in comes back out by concept code, with its links."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
import pytest
from sr_checks import coding_scheme_designators, declared_schemes
from sr_inputs import draw_label_map

from quantitation.results import Status
from sr_templates import (
    AlgorithmInfo,
    OutputEncodingError,
    build_measurement_report,
    build_no_series_report,
    build_segmentation,
    codes,
    device_uid,
)

SR_CLASSES = {
    "enhanced": "1.2.840.10008.5.1.4.1.1.88.22",
    "comprehensive": "1.2.840.10008.5.1.4.1.1.88.33",
    "comprehensive3d": "1.2.840.10008.5.1.4.1.1.88.34",
}


def _reread(ds: pydicom.Dataset):
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return hd.sr.srread(BytesIO(buffer.getvalue()))


def _key(code) -> tuple[str, str]:
    return (code.value, code.scheme_designator)


def _numbers(group) -> dict[tuple[str, str], tuple[float, str]]:
    out = {}
    for m in group.get_measurements():
        key = _key(m.name)
        assert key not in out, f"duplicate measurement {key} in group {group.tracking_identifier}"
        out[key] = (m.value, m.unit.value)
    return out


def _evaluations(group) -> dict[tuple[str, str], tuple[str, str]]:
    return {_key(q.name): _key(q.value) for q in group.get_qualitative_evaluations()}


def _texts(group) -> list[str]:
    return [item.TextValue for item in group[0].ContentSequence
            if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "121106"]


@pytest.fixture
def outputs(mr_slice, quantitation, algorithm):
    label_map = draw_label_map(omit=(11,))  # the failed L5/S1 disc is not segmented either
    seg = build_segmentation(mr_slice, label_map, algorithm, uid_seed="job-1")
    return seg, quantitation


@pytest.mark.parametrize("sr_kind", sorted(SR_CLASSES))
def test_every_disc_measurement_comes_back_by_concept_code(sr_kind, mr_slice, outputs, algorithm):
    seg, q = outputs
    sr = _reread(build_measurement_report(mr_slice, seg, q, algorithm, sr_kind=sr_kind, uid_seed="job-1"))
    assert sr.SOPClassUID == SR_CLASSES[sr_kind]
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert sr.SeriesDescription == "BianqueNet disc quantitation - measurements"

    for disc in q.discs:
        finding = codes.DISC_CODES[disc.level]
        groups = (sr.content.get_volumetric_roi_measurement_groups(finding_type=finding)
                  + sr.content.get_image_measurement_groups(finding_type=finding))
        assert len(groups) == 1, f"disc {disc.level}: expected one structure group"
        group = groups[0]
        numbers = _numbers(group)
        expected = {
            _key(codes.HEIGHT): (disc.dh_mm, "mm"),
            _key(codes.DHI): (disc.dhi, "1"),
            _key(codes.HDR): (disc.hdr, "1"),
            _key(codes.DELTA_SI): (disc.delta_si, "1"),
            _key(codes.DELTA_SI_FAT): (disc.delta_si_fat, "1"),
            _key(codes.GRADE_Z): (disc.grade_z, "1"),
        }
        for dev in disc.deviations:
            expected[_key(codes.deviation_concept(dev.quantity, dev.kind))] = (dev.value, "1")
        expected = {k: v for k, v in expected.items() if v[0] is not None}
        assert numbers.keys() == expected.keys(), disc.level
        for k, (value, unit) in expected.items():
            assert numbers[k][1] == unit
            assert numbers[k][0] == pytest.approx(value, rel=1e-9), (disc.level, k)

        evaluations = _evaluations(group)
        assert evaluations[_key(codes.QUANTITATION_STATUS)] == _key(codes.STATUS_VALUES[disc.status])
        if disc.grade_group is not None:
            assert evaluations[_key(codes.GRADE_GROUP)] == _key(codes.GRADE_GROUP_VALUES[disc.grade_group])
        else:
            assert _key(codes.GRADE_GROUP) not in evaluations
        assert _texts(group) == list(disc.reasons)
        dh = [m for m in group.get_measurements(name=codes.HEIGHT)]
        if dh:
            assert _key(dh[0].derivation) == _key(codes.MEAN)
            assert _key(dh[0].method) == _key(codes.METHOD_VALUES[disc.method])


def _uncertainty(measurement_item) -> dict[str, float]:
    """The TID 1419 upper / lower measurement uncertainty NUMs under one measurement NUM, by SCT code."""
    return {item.ConceptNameCodeSequence[0].CodeValue: float(item.MeasuredValueSequence[0].NumericValue)
            for item in getattr(measurement_item, "ContentSequence", [])
            if item.ValueType == "NUM" and item.RelationshipType == "HAS PROPERTIES"}


def test_delta_si_carries_its_outline_range_as_measurement_uncertainty(mr_slice, outputs, algorithm):
    """ΔSI's range over the outline shrunk / grown by one pixel comes back as TID 1419 upper (SCT 371886008)
    and lower (SCT 371885007) measurement uncertainty, relative to the value."""
    seg, q = outputs
    sr = _reread(build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1"))
    checked = 0
    for disc in q.discs:
        finding = codes.DISC_CODES[disc.level]
        groups = (sr.content.get_volumetric_roi_measurement_groups(finding_type=finding)
                  + sr.content.get_image_measurement_groups(finding_type=finding))
        items = [item for item in groups[0][0].ContentSequence if item.ValueType == "NUM"
                 and _key(item.ConceptNameCodeSequence[0]) == _key(codes.DELTA_SI)]
        if disc.delta_si is None:
            assert not items
            continue
        lo, hi = disc.delta_si_outline_range
        assert _uncertainty(items[0]) == pytest.approx({"371886008": hi - disc.delta_si,
                                                         "371885007": disc.delta_si - lo})
        checked += 1
    assert checked >= 3


def test_reference_deviation_evaluations_and_population(mr_slice, outputs, algorithm):
    seg, q = outputs
    sr = _reread(build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1"))
    l12 = sr.content.get_volumetric_roi_measurement_groups(finding_type=codes.DISC_CODES["L1/L2"])[0]
    evaluations = _evaluations(l12)
    # L1/L2 fixture: DHI z = 0.5 (within), dSI z = -2.5 (below), DH relative 0.0 with no SD (no category)
    assert evaluations[_key(codes.deviation_evaluation_concept("dhi"))] == _key(codes.WITHIN_REFERENCE)
    assert evaluations[_key(codes.deviation_evaluation_concept("delta_si"))] == _key(codes.BELOW_REFERENCE)
    assert _key(codes.deviation_evaluation_concept("dh")) not in evaluations
    l45 = sr.content.get_volumetric_roi_measurement_groups(finding_type=codes.DISC_CODES["L4/L5"])[0]
    assert _evaluations(l45)[_key(codes.deviation_evaluation_concept("dhi"))] == _key(codes.ABOVE_REFERENCE)
    dhi_z = l12.get_measurements(name=codes.deviation_concept("dhi", "z"))[0]
    children = list(dhi_z[0].ContentSequence)  # the NUM item's children: method, statistical properties
    population = {item.ConceptNameCodeSequence[0].CodeValue: item for item in children}
    assert population["121405"].TextValue == "Zheng 2022, male, L1/L2"  # Population description
    assert float(population["373098007"].MeasuredValueSequence[0].NumericValue) == pytest.approx(0.42)  # mean
    assert float(population["386136009"].MeasuredValueSequence[0].NumericValue) == pytest.approx(0.05)  # SD


def test_groups_link_to_their_seg_segments_and_source(mr_slice, outputs, algorithm):
    seg, q = outputs
    sr = _reread(build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1"))
    segments = {str(s.TrackingUID): s for s in seg.SegmentSequence}
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    assert len(volumetric) == 4 + 6  # four segmented discs + L1..L5 and the sacrum
    for group in volumetric:
        segment = segments[group.tracking_uid]  # tracking UID shared with the SEG segment
        assert group.tracking_identifier == segment.TrackingID
        ref = group.referenced_segment
        assert ref.referenced_segment_numbers == [segment.SegmentNumber]
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        finding = group.finding_type
        assert _key(finding) == _key(segment.SegmentedPropertyTypeCodeSequence[0])
        assert ref.source_images_for_segmentation[0].referenced_sop_instance_uid == mr_slice.SOPInstanceUID
    # the failed, unsegmented L5/S1 disc is an image-level group with its reason, not missing
    failed = sr.content.get_image_measurement_groups(finding_type=codes.DISC_CODES["L5/S1"])
    assert len(failed) == 1
    assert _evaluations(failed[0])[_key(codes.QUANTITATION_STATUS)] == _key(codes.STATUS_VALUES[Status.FAILED])
    assert _texts(failed[0]) == ["disc not found between L5 and S1"]
    assert failed[0].source_images[0].referenced_sop_instance_uid == mr_slice.SOPInstanceUID
    # evidence: MR and SEG in the current requested procedure evidence
    evidence = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert evidence == {mr_slice.SOPInstanceUID, seg.SOPInstanceUID}


def test_vertebral_heights_have_their_own_groups(mr_slice, outputs, algorithm):
    seg, q = outputs
    sr = _reread(build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1"))
    for vertebra in q.vertebrae:
        groups = sr.content.get_volumetric_roi_measurement_groups(finding_type=codes.VERTEBRA_CODES[vertebra.level])
        assert len(groups) == 1
        numbers = _numbers(groups[0])
        if vertebra.height_mm is None:
            assert numbers == {}
            assert _texts(groups[0]) == list(vertebra.reasons)
        else:
            assert numbers == {_key(codes.HEIGHT): (pytest.approx(vertebra.height_mm), "mm")}


def test_planar_scoord_groups_carry_lines_and_outlines(mr_slice, outputs, algorithm):
    seg, q = outputs
    sr = _reread(build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1"))
    planar = {g.tracking_identifier: g for g in sr.content.get_planar_roi_measurement_groups()}
    for disc in q.discs:
        if disc.height_line is None:
            assert f"{disc.level} disc height line" not in planar
            continue
        line = planar[f"{disc.level} disc height line"]
        region = line.roi
        assert region.GraphicType == "POLYLINE"
        expected = np.array([[c + 0.5, r + 0.5] for r, c in disc.height_line])
        np.testing.assert_allclose(np.asarray(region.value), expected, atol=1e-4)
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == mr_slice.SOPInstanceUID
        assert _numbers(line)[_key(codes.HEIGHT)][0] == pytest.approx(disc.dh_mm)
        outline = planar[f"{disc.level} disc outline"].roi
        pts = np.asarray(outline.value)
        assert len(pts) == len(disc.outline) + 1 and np.allclose(pts[0], pts[-1])  # closed
        assert _key(planar[f"{disc.level} disc outline"].finding_type) == _key(codes.DISC_CODES[disc.level])
    assert "L1 vertebral body corners" in planar


def test_observer_device_procedure_and_private_scheme(mr_slice, outputs, algorithm):
    seg, q = outputs
    built = build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1")
    sr = _reread(built)
    dump = str(built)
    assert device_uid(algorithm) in dump
    assert device_uid(algorithm) == device_uid(AlgorithmInfo("BianqueNet", "1.2.0", "big_apex", "ab" * 32))
    assert device_uid(algorithm) != device_uid(AlgorithmInfo("BianqueNet", "1.3.0", "big_apex", "ab" * 32))
    procedures = [item.ConceptCodeSequence[0].CodeValue for item in sr.ContentSequence
                  if item.ConceptNameCodeSequence[0].CodeValue == "121058"]
    assert procedures == ["25056-3"]
    assert "121007" in dump  # observer type Device
    assert declared_schemes(sr) == {codes.PRIVATE_SCHEME}
    used = coding_scheme_designators(sr)
    assert codes.PRIVATE_SCHEME in used
    assert used - {"DCM", "SCT", "UCUM", "LN", "RFC5646", "ISO3166_1", "DCMR"} == {codes.PRIVATE_SCHEME}


def test_enhanced_mr_source_frame_is_referenced(enhanced_factory, label_map, quantitation, algorithm):
    emr = enhanced_factory("oblique", n_frames=3, analysed_frame=2)
    seg = build_segmentation(emr, label_map, algorithm, frame_index=2, uid_seed="job-1")
    sr = _reread(build_measurement_report(emr, seg, quantitation, algorithm, frame_index=2, uid_seed="job-1"))
    group = sr.content.get_volumetric_roi_measurement_groups(finding_type=codes.DISC_CODES["L3/L4"])[0]
    source = group.referenced_segment.source_images_for_segmentation[0]
    assert source.referenced_sop_instance_uid == emr.SOPInstanceUID
    assert source.referenced_frame_numbers == [3]
    line = {g.tracking_identifier: g for g in sr.content.get_planar_roi_measurement_groups()}["L3/L4 disc height line"]
    assert line.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber == 3


def test_deterministic_and_bad_kind(mr_slice, outputs, algorithm):
    seg, q = outputs
    a = build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1")
    b = build_measurement_report(mr_slice, seg, q, algorithm, uid_seed="job-1")
    assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)
    with pytest.raises(OutputEncodingError, match="unknown SR kind"):
        build_measurement_report(mr_slice, seg, q, algorithm, sr_kind="basic", uid_seed="job-1")


def test_no_series_report(mr_slice, algorithm):
    sr = _reread(build_no_series_report(mr_slice, algorithm, uid_seed="job-1"))
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 1
    assert _evaluations(groups[0])[_key(codes.ANALYSIS_OUTCOME)] == _key(codes.NO_LUMBAR_SAGITTAL_T2)
    assert sr.StudyInstanceUID == mr_slice.StudyInstanceUID
    assert [t for g in groups for t in _texts(g)] == ["No lumbar sagittal T2 series was found in this study"]


def test_uncodable_values_become_comments_not_failures(mr_slice, outputs, algorithm):
    import dataclasses

    from quantitation.results import ReferenceDeviation

    seg, q = outputs
    odd = dataclasses.replace(q.discs[0], grade_group=7, deviations=(
        ReferenceDeviation("wd", "z", 1.5, 40.0, 4.0, "future reference"),))
    q2 = dataclasses.replace(q, discs=(odd, *q.discs[1:]))
    sr = _reread(build_measurement_report(mr_slice, seg, q2, algorithm, uid_seed="job-1"))
    group = sr.content.get_volumetric_roi_measurement_groups(finding_type=codes.DISC_CODES["L1/L2"])[0]
    assert _key(codes.GRADE_GROUP) not in _evaluations(group)
    texts = _texts(group)
    assert any("grade group 7" in t for t in texts)
    assert any("wd/z" in t and "future reference" in t for t in texts)
    assert _numbers(group)[_key(codes.HEIGHT)][0] == pytest.approx(odd.dh_mm)
