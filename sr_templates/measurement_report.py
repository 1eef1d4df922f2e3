"""TID 1500 Measurement Report of one analysed slice (Enhanced SR by default).

Layout (dicom-outputs.md §0, §2.4):

* one TID 1411 group per disc and per vertebra whose segment is in the SEG: Tracking Identifier
  and UID shared with the segment, finding type = the level's SNOMED code, finding site = lumbar
  spine, Referenced Segment + Source image for segmentation, the measurements (with UCUM units and
  the quantitation method), the grade group, the deviation from the population reference, the
  quantitation status and one TEXT "Comment" per reason something could not be measured;
* a structure that is not in the SEG (not segmented) gets a TID 1501 group on the source image
  with its status and reasons, so it is never silently missing;
* per disc, TID 1410 planar groups carrying the disc-height line and the disc outline as 2D
  SCOORD POLYLINEs (what OHIF draws); per vertebra, its corner outline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes as pydicom_codes
from pydicom.sr.coding import Code

from quantitation.results import (
    DiscResult,
    Method,
    Point,
    ReferenceDeviation,
    SliceQuantitation,
    Status,
    VertebraResult,
)
from sr_templates import codes
from sr_templates.identity import MANUFACTURER, AlgorithmInfo, derive_uid, device_uid
from sr_templates.segmentation import OUTPUT_CHARACTER_SET
from sr_templates.source_slice import (
    institution_kwargs,
    OutputEncodingError,
    check_frame_index,
    frame_numbers,
    library_view,
    metadata_copy,
    sop_uids,
)

SrKind = Literal["enhanced", "comprehensive", "comprehensive3d"]
SR_SERIES_NUMBER = 9902
SR_SERIES_DESCRIPTION = "BianqueNet disc quantitation - measurements"

_SR_CLASSES: dict[str, type[hd.sr.EnhancedSR] | type[hd.sr.ComprehensiveSR] | type[hd.sr.Comprehensive3DSR]] = {
    "enhanced": hd.sr.EnhancedSR,
    "comprehensive": hd.sr.ComprehensiveSR,
    "comprehensive3d": hd.sr.Comprehensive3DSR,
}

AnyGroup = (hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
            | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
            | hd.sr.MeasurementsAndQualitativeEvaluations)


class _Context:
    """What every group needs: source references, SEG segments, method, algorithm, seed."""

    def __init__(self, source: Dataset, segmentation: Dataset, algorithm: AlgorithmInfo,
                 frame_index: int | None, uid_seed: str) -> None:
        self.source_class_uid, self.source_instance_uid = sop_uids(source)
        self.frames = frame_numbers(frame_index)
        self.segmentation = segmentation
        self.algorithm_id = algorithm.sr_identification()
        self.uid_seed = uid_seed
        self.segments: dict[str, tuple[int, str]] = {}
        for item in segmentation.SegmentSequence:
            if "TrackingID" in item and "TrackingUID" in item:
                self.segments[str(item.TrackingID)] = (int(item.SegmentNumber), str(item.TrackingUID))

    def source_for_segmentation(self) -> hd.sr.SourceImageForSegmentation:
        return hd.sr.SourceImageForSegmentation(self.source_class_uid, self.source_instance_uid, self.frames)

    def source_for_group(self) -> hd.sr.SourceImageForMeasurementGroup:
        return hd.sr.SourceImageForMeasurementGroup(self.source_class_uid, self.source_instance_uid, self.frames)

    def region(self, points: Sequence[Point], closed: bool) -> hd.sr.ImageRegion:
        """Closed or open POLYLINE from (row, col) pixel-centre points on the source grid.

        SCOORD graphic data is (column, row) with 0.5\\0.5 the centre of the top-left pixel.
        """
        rc = np.asarray(points, dtype=np.float64)
        if closed:
            rc = np.vstack([rc, rc[:1]])
        graphic = np.stack([rc[:, 1] + 0.5, rc[:, 0] + 0.5], axis=1)
        src = hd.sr.SourceImageForRegion(self.source_class_uid, self.source_instance_uid, self.frames)
        return hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=graphic,
            source_image=src,
            pixel_origin_interpretation=("FRAME" if self.frames else None),
        )


def _method(method: Method) -> Code:
    return codes.METHOD_VALUES[method]


def _num(name: Code, value: float | None, unit: Code, method: Method, *, derivation: Code | None = None,
         properties: hd.sr.MeasurementProperties | None = None) -> list[hd.sr.Measurement]:
    if value is None or not np.isfinite(value):
        return []
    return [hd.sr.Measurement(name=name, value=float(value), unit=unit, method=_method(method),
                              derivation=derivation, properties=properties)]


def _reference_properties(dev: ReferenceDeviation) -> hd.sr.MeasurementProperties:
    unit = codes.MILLIMETER if dev.quantity == "dh" else codes.NO_UNITS
    values = [hd.sr.NumContentItem(name=codes.MEAN, value=float(dev.reference_mean), unit=unit,
                                   relationship_type="HAS PROPERTIES")]
    if dev.reference_sd is not None:
        values.append(hd.sr.NumContentItem(name=pydicom_codes.SCT.StandardDeviation,
                                           value=float(dev.reference_sd), unit=unit,
                                           relationship_type="HAS PROPERTIES"))
    return hd.sr.MeasurementProperties(
        measurement_statistical_properties=hd.sr.MeasurementStatisticalProperties(
            values=values, description=dev.reference[:64]))


def _deviation_z(dev: ReferenceDeviation) -> float | None:
    if dev.kind == "z":
        return dev.value
    if dev.kind == "relative" and dev.reference_sd:
        return dev.value * dev.reference_mean / dev.reference_sd
    return None


def _deviation_items(deviations: Sequence[ReferenceDeviation], method: Method, notes: list[str]
                     ) -> tuple[list[hd.sr.Measurement], list[hd.sr.QualitativeEvaluation]]:
    measurements: list[hd.sr.Measurement] = []
    evaluations: list[hd.sr.QualitativeEvaluation] = []
    evaluated: set[str] = set()
    for dev in deviations:
        if not codes.is_known_deviation(dev.quantity, dev.kind):
            notes.append(f"deviation {dev.quantity}/{dev.kind} = {dev.value:g} vs {dev.reference} (no code, not encoded)")
            continue
        measurements += _num(codes.deviation_concept(dev.quantity, dev.kind), dev.value, codes.NO_UNITS, method,
                             properties=_reference_properties(dev))
        z = _deviation_z(dev)
        if z is None or dev.quantity in evaluated or not np.isfinite(z):
            continue
        evaluated.add(dev.quantity)
        if z > codes.REFERENCE_RANGE_SD:
            value = codes.ABOVE_REFERENCE
        elif z < -codes.REFERENCE_RANGE_SD:
            value = codes.BELOW_REFERENCE
        else:
            value = codes.WITHIN_REFERENCE
        evaluations.append(hd.sr.QualitativeEvaluation(codes.deviation_evaluation_concept(dev.quantity), value))
    return measurements, evaluations


def _outline_uncertainty(disc: DiscResult) -> hd.sr.MeasurementProperties | None:
    """TID 1419 upper / lower measurement uncertainty of ΔSI: how far it moves when the disc outline is drawn
    one pixel smaller or larger (``DiscResult.delta_si_outline_range``)."""
    if disc.delta_si is None or disc.delta_si_outline_range is None:
        return None
    lo, hi = disc.delta_si_outline_range
    return hd.sr.MeasurementProperties(upper_measurement_uncertainty=max(hi - disc.delta_si, 0.0),
                                       lower_measurement_uncertainty=max(disc.delta_si - lo, 0.0))


def _disc_content(disc: DiscResult, notes: list[str]
                  ) -> tuple[list[hd.sr.Measurement], list[hd.sr.QualitativeEvaluation]]:
    """Measurements and evaluations of one disc; anything that cannot be coded goes to ``notes``."""
    m = disc.method
    measurements = (
        _num(codes.HEIGHT, disc.dh_mm, codes.MILLIMETER, m, derivation=codes.MEAN)
        + _num(codes.DHI, disc.dhi, codes.NO_UNITS, m)
        + _num(codes.HDR, disc.hdr, codes.NO_UNITS, m)
        + _num(codes.DELTA_SI, disc.delta_si, codes.NO_UNITS, m, properties=_outline_uncertainty(disc))
        + _num(codes.DELTA_SI_FAT, disc.delta_si_fat, codes.NO_UNITS, m)
        + _num(codes.GRADE_Z, disc.grade_z, codes.NO_UNITS, m)
    )
    evaluations = []
    if disc.grade_group in codes.GRADE_GROUP_VALUES:
        evaluations.append(hd.sr.QualitativeEvaluation(codes.GRADE_GROUP, codes.GRADE_GROUP_VALUES[disc.grade_group]))
    elif disc.grade_group is not None:
        notes.append(f"grade group {disc.grade_group} is outside 1..5 and was not encoded")
    dev_measurements, dev_evaluations = _deviation_items(disc.deviations, m, notes)
    return measurements + dev_measurements, evaluations + dev_evaluations


def _status_evaluation(status: Status) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(codes.QUANTITATION_STATUS, codes.STATUS_VALUES[status])


def _add_reasons(group: Dataset, reasons: Sequence[str]) -> None:
    """Append one TEXT (121106, DCM, "Comment") per reason to the measurement group container."""
    for reason in reasons:
        group.ContentSequence.append(
            hd.sr.TextContentItem(name=codes.REASON, value=reason[:1024], relationship_type="CONTAINS"))


def _structure_group(ctx: _Context, structure: codes.StructureCode, level: str, status: Status,
                     reasons: Sequence[str], method: Method, measurements: list[hd.sr.Measurement],
                     evaluations: list[hd.sr.QualitativeEvaluation]) -> AnyGroup:
    """TID 1411 group on the structure's segment, or TID 1501 on the image when not segmented."""
    common = dict(
        finding_type=structure.property_type,
        finding_sites=[hd.sr.FindingSite(codes.LUMBAR_SPINE)],
        method=_method(method),
        algorithm_id=ctx.algorithm_id,
        measurements=measurements or None,
        qualitative_evaluations=evaluations + [_status_evaluation(status)],
    )
    segment = ctx.segments.get(structure.tracking_id)
    if segment is not None:
        number, tracking_uid = segment
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=structure.tracking_id),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=ctx.segmentation.SOPClassUID, sop_instance_uid=ctx.segmentation.SOPInstanceUID,
                segment_number=number, source_images=[ctx.source_for_segmentation()]),
            **common)
    else:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derive_uid(ctx.uid_seed, "tracking", structure.tracking_id),
                identifier=structure.tracking_id),
            source_images=[ctx.source_for_group()],
            **common)
        if not reasons and status != Status.OK:
            reasons = (f"{level} was not segmented",)
    _add_reasons(group[0], reasons)
    return group


def _planar_group(ctx: _Context, structure: codes.StructureCode, role: str, points: Sequence[Point],
                  closed: bool, measurements: list[hd.sr.Measurement]) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derive_uid(ctx.uid_seed, "planar", structure.tracking_id, role),
            identifier=f"{structure.tracking_id} {role}"),
        referenced_region=ctx.region(points, closed),
        finding_type=structure.property_type,
        finding_sites=[hd.sr.FindingSite(codes.LUMBAR_SPINE)],
        algorithm_id=ctx.algorithm_id,
        measurements=measurements or None,
    )


def _disc_groups(ctx: _Context, disc: DiscResult) -> list[AnyGroup]:
    structure = codes.STRUCTURES[codes.LEVEL_TO_LABEL[disc.level]]
    notes: list[str] = []
    measurements, evaluations = _disc_content(disc, notes)
    groups: list[AnyGroup] = [_structure_group(ctx, structure, f"disc {disc.level}", disc.status,
                                               (*disc.reasons, *notes), disc.method, measurements, evaluations)]
    if disc.height_line is not None:
        groups.append(_planar_group(ctx, structure, "height line", disc.height_line, False,
                                    _num(codes.HEIGHT, disc.dh_mm, codes.MILLIMETER, disc.method,
                                         derivation=codes.MEAN)))
    if disc.outline is not None and len(disc.outline) >= 3:
        groups.append(_planar_group(ctx, structure, "outline", disc.outline, True, []))
    return groups


def _vertebra_groups(ctx: _Context, vertebra: VertebraResult, method: Method) -> list[AnyGroup]:
    structure = codes.STRUCTURES[codes.LEVEL_TO_LABEL[vertebra.level]]
    measurements = _num(codes.HEIGHT, vertebra.height_mm, codes.MILLIMETER, method)
    groups: list[AnyGroup] = [_structure_group(ctx, structure, f"vertebra {vertebra.level}", vertebra.status,
                                               vertebra.reasons, method, measurements, [])]
    if vertebra.corners is not None:
        ant_sup, post_sup, ant_inf, post_inf = vertebra.corners
        groups.append(_planar_group(ctx, structure, "corners", (ant_sup, post_sup, post_inf, ant_inf), True, []))
    return groups


def observation_context(algorithm: AlgorithmInfo) -> hd.sr.ObservationContext:
    """Observer = the device (stable Device Observer UID per algorithm version and weights)."""
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DEVICE_OBSERVER,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=device_uid(algorithm), name=algorithm.name, manufacturer_name=MANUFACTURER,
                model_name=algorithm.model_name, serial_number=algorithm.serial_number)))


def sr_document_class(sr_kind: str) -> type:
    try:
        return _SR_CLASSES[sr_kind]
    except KeyError as exc:
        raise OutputEncodingError(f"unknown SR kind {sr_kind!r}; use one of {sorted(_SR_CLASSES)}") from exc


def sr_document(
    sr_kind: str,
    report: hd.sr.MeasurementReport,
    evidence: list[Dataset],
    header_source: Dataset,
    algorithm: AlgorithmInfo,
    *,
    uid_seed: str,
    uid_tag: str,
    series_number: int,
    series_description: str,
) -> hd.sr.EnhancedSR | hd.sr.ComprehensiveSR | hd.sr.Comprehensive3DSR:
    """Wrap a TID 1500 report in the SR IOD ``sr_kind``, with our series, equipment and coding schemes;
    patient, study and institution attributes come from ``header_source``."""
    return sr_document_class(sr_kind)(
        evidence=evidence,
        content=report,
        series_instance_uid=derive_uid(uid_seed, uid_tag, sr_kind, "series"),
        series_number=series_number,
        sop_instance_uid=derive_uid(uid_seed, uid_tag, sr_kind, "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=series_description,
        specific_character_set=OUTPUT_CHARACTER_SET,
        **institution_kwargs(header_source),
        coding_schemes=[codes.coding_scheme_identification()],
        manufacturer_model_name=algorithm.model_name,
        software_versions=algorithm.software_version,
        device_serial_number=algorithm.serial_number,
    )


def build_measurement_report(
    source: Dataset,
    segmentation: Dataset,
    quantitation: SliceQuantitation,
    algorithm: AlgorithmInfo,
    *,
    frame_index: int | None = None,
    sr_kind: SrKind = "enhanced",
    series_number: int = SR_SERIES_NUMBER,
    uid_seed: str,
) -> hd.sr.EnhancedSR | hd.sr.ComprehensiveSR | hd.sr.Comprehensive3DSR:
    """TID 1500 Measurement Report for one slice.

    Args:
        source: the analysed MR instance (pixel data not needed; the same dataset given to
            :func:`build_segmentation`).
        segmentation: the SEG built from it (its segments' Tracking ID/UID are reused).
        quantitation: the slice's results. CONTRACT: every point in it (``height_line``,
            ``outline``, ``anterior_mid``/``posterior_mid``, vertebra ``corners``) is (row, col) on
            the SOURCE pixel grid (pixel centres at integer indices), already mapped back from the
            network's canonical grid by the pipeline. They become SCOORD (column + 0.5, row + 0.5).
        algorithm: model identity (device observer and TID 4019 algorithm identification).
        frame_index: 0-based frame of a multi-frame source.
        sr_kind: "enhanced" (default), "comprehensive" or "comprehensive3d".
        series_number: Series Number of the new SR series.
        uid_seed: seed for deterministic UIDs (include the job version).

    Raises:
        OutputEncodingError: unknown SR kind, unusable source, SEG of another study. Values that
            cannot be coded (grade group outside 1..5, unknown deviation quantity) do not fail the
            report: they become "Comment" TEXT items of their group.
    """
    frame_index = check_frame_index(source, frame_index)
    sr_document_class(sr_kind)  # an unknown kind fails before anything is built
    src = metadata_copy(source, frame_index)
    if segmentation.StudyInstanceUID != src.StudyInstanceUID:
        raise OutputEncodingError("the segmentation does not belong to the source study")
    ctx = _Context(src, segmentation, algorithm, frame_index, uid_seed)
    groups: list[AnyGroup] = []
    for disc in quantitation.discs:
        groups += _disc_groups(ctx, disc)
    for vertebra in quantitation.vertebrae:
        groups += _vertebra_groups(ctx, vertebra, quantitation.method)
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(algorithm),
        procedure_reported=codes.PROCEDURE_REPORTED,
        imaging_measurements=groups,
        referenced_images=[library_view(src, frame_index)],
    )
    return sr_document(
        sr_kind, report, [src, segmentation], src, algorithm, uid_seed=uid_seed, uid_tag="sr",
        series_number=series_number, series_description=SR_SERIES_DESCRIPTION,
    )
