"""A short TID 1500 report saying that the study held no analysable lumbar sagittal T2 series."""

from __future__ import annotations

import highdicom as hd
from pydicom import Dataset

from sr_templates import codes
from sr_templates.identity import AlgorithmInfo, derive_uid
from sr_templates.source_slice import header_copy
from sr_templates.measurement_report import (
    SR_SERIES_NUMBER,
    SrKind,
    observation_context,
    sr_document,
    sr_document_class,
)

NO_SERIES_DESCRIPTION = "BianqueNet disc quantitation - no lumbar sagittal T2 found"


def build_no_series_report(
    study_instance: Dataset,
    algorithm: AlgorithmInfo,
    *,
    reason: str = "No lumbar sagittal T2 series was found in this study",
    sr_kind: SrKind = "enhanced",
    series_number: int = SR_SERIES_NUMBER,
    uid_seed: str,
) -> hd.sr.EnhancedSR | hd.sr.ComprehensiveSR | hd.sr.Comprehensive3DSR:
    """TID 1500 report with one image-level group: outcome "no lumbar sagittal T2" plus the reason.

    ``study_instance`` is any instance of the study (pixel data not needed): patient and study
    modules are copied from it and it is the group's source image.
    """
    sr_document_class(sr_kind)  # an unknown kind fails before anything is built
    study_instance = header_copy(study_instance)
    source_ref = hd.sr.SourceImageForMeasurementGroup(study_instance.SOPClassUID, study_instance.SOPInstanceUID)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=derive_uid(uid_seed, "no-series", "tracking"),
                                                     identifier="Analysis outcome"),
        finding_sites=[hd.sr.FindingSite(codes.LUMBAR_SPINE)],
        algorithm_id=algorithm.sr_identification(),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.ANALYSIS_OUTCOME, codes.NO_LUMBAR_SAGITTAL_T2)],
        source_images=[source_ref],
    )
    group[0].ContentSequence.append(
        hd.sr.TextContentItem(name=codes.REASON, value=reason[:1024], relationship_type="CONTAINS"))
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(algorithm),
        procedure_reported=codes.PROCEDURE_REPORTED,
        imaging_measurements=[group],
    )
    return sr_document(
        sr_kind, report, [study_instance], study_instance, algorithm, uid_seed=uid_seed, uid_tag="no-series",
        series_number=series_number, series_description=NO_SERIES_DESCRIPTION,
    )
