"""Disc quantitation (pure: no I/O, no logging, no torch).

Public API::

    quantify_slice(label_map, image_8bit, pixel_spacing_mm, *, method="default"|"bianque2022"|Method,
                   sex="F"|"M"|None, age_years=None, original_image=None) -> SliceQuantitation
    demographics_from_header(patient_age, patient_sex, birth_date, study_date) -> (sex, age_years)
    grade_group(delta_si) -> (group 1..5, signed z-distance)
"""

from quantitation.demographics import demographics_from_header
from quantitation.grading import deviations, grade_group, grade_group_label
from quantitation.quantify import quantify_slice
from quantitation.results import (
    DISC_LEVELS,
    VERTEBRA_LEVELS,
    DiscResult,
    Measurement,
    Method,
    ReferenceDeviation,
    SliceQuantitation,
    Status,
    VertebraResult,
)

__all__ = [
    "DISC_LEVELS",
    "VERTEBRA_LEVELS",
    "DiscResult",
    "Measurement",
    "Method",
    "ReferenceDeviation",
    "SliceQuantitation",
    "Status",
    "VertebraResult",
    "demographics_from_header",
    "deviations",
    "grade_group",
    "grade_group_label",
    "quantify_slice",
]
