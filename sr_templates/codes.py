"""Every code used in the SEG, the TID 1500 SR and the report image (one place, see dicom-outputs.md §3).

Standard codes come from SNOMED CT (SCT), DICOM (DCM), LOINC (LN) and UCUM via pydicom's code
dictionary. Concepts that have no standard code (ΔSI, DHI, HDR, the grade group, the deviation from a
population reference, the quantitation status and method) use the private coding scheme
``99BIANQUE``, which every output declares in its Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from quantitation.results import Method, Status

# ----------------------------------------------------------------------------------------------
# Private coding scheme (PS3.3 §8.2: designators starting with "99" are local)

PRIVATE_SCHEME = "99BIANQUE"
PRIVATE_SCHEME_VERSION = "1"


def coding_scheme_identification() -> CodingSchemeIdentificationItem:
    """The Coding Scheme Identification Sequence item declaring ``99BIANQUE``."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="bianque-node lumbar disc quantitation codes",
        version=PRIVATE_SCHEME_VERSION,
        responsible_organization="bianque-node project",
    )


def _private(value: str, meaning: str) -> Code:
    if len(value) > 16 or len(meaning) > 64:
        raise ValueError(f"private code {value!r} exceeds SH/LO length limits")
    return Code(value, PRIVATE_SCHEME, meaning)


# ----------------------------------------------------------------------------------------------
# Segments (label-map value -> anatomy), dicom-outputs.md §3.1


@dataclass(frozen=True)
class StructureCode:
    """Coding of one label-map class as a SEG segment / SR finding."""

    label_value: int  # value in the 14-class label map
    label: str  # Segment Label (free text)
    tracking_id: str  # Tracking Identifier shared by SEG segment and SR group
    category: Code
    property_type: Code
    anatomic_region: Code | None
    display_rgb: tuple[int, int, int]  # recommended display colour (written as CIELab)


ANATOMICAL_STRUCTURE: Code = codes.SCT.AnatomicalStructure  # 91723000
TISSUE: Code = codes.SCT.Tissue  # 85756007
LUMBAR_SPINE: Code = codes.SCT.LumbarSpine  # 122496007
SACRUM: Code = codes.SCT.Sacrum  # 54735007
VERTEBRAL_CANAL: Code = codes.SCT.VertebralCanal  # 61853006

VERTEBRA_CODES: dict[str, Code] = {
    "L1": codes.SCT.L1Vertebra,  # 66794005
    "L2": codes.SCT.L2Vertebra,  # 14293000
    "L3": codes.SCT.L3Vertebra,  # 36470004
    "L4": codes.SCT.L4Vertebra,  # 11994002
    "L5": codes.SCT.L5Vertebra,  # 49668003
    "S1": SACRUM,  # the network's "S1" class is the sacrum
}
DISC_CODES: dict[str, Code] = {
    "L1/L2": codes.SCT.L1L2Disc,  # 80064006
    "L2/L3": codes.SCT.L2L3Disc,  # 67459009
    "L3/L4": codes.SCT.L3L4Disc,  # 62551000
    "L4/L5": codes.SCT.L4L5Disc,  # 84020006
    "L5/S1": codes.SCT.L5S1Disc,  # 715056000
}


def _vertebra(value: int, level: str, rgb: tuple[int, int, int]) -> StructureCode:
    return StructureCode(value, f"{level} vertebral body", f"{level} vertebral body", ANATOMICAL_STRUCTURE,
                         VERTEBRA_CODES[level], LUMBAR_SPINE, rgb)


def _disc(value: int, level: str, rgb: tuple[int, int, int]) -> StructureCode:
    return StructureCode(value, f"{level} disc", f"{level} disc", ANATOMICAL_STRUCTURE, DISC_CODES[level],
                         LUMBAR_SPINE, rgb)


#: label-map value -> coding; 0 is background and never a segment.
STRUCTURES: dict[int, StructureCode] = {
    1: StructureCode(1, "CSF (spinal canal)", "CSF", ANATOMICAL_STRUCTURE, codes.SCT.CerebrospinalFluid,
                     VERTEBRAL_CANAL, (64, 160, 255)),
    2: _vertebra(2, "L1", (230, 200, 60)),
    3: _disc(3, "L1/L2", (255, 80, 80)),
    4: _vertebra(4, "L2", (200, 230, 60)),
    5: _disc(5, "L2/L3", (255, 140, 0)),
    6: _vertebra(6, "L3", (140, 220, 90)),
    7: _disc(7, "L3/L4", (255, 0, 160)),
    8: _vertebra(8, "L4", (90, 210, 160)),
    9: _disc(9, "L4/L5", (190, 60, 255)),
    10: _vertebra(10, "L5", (60, 200, 220)),
    11: _disc(11, "L5/S1", (255, 60, 200)),
    12: StructureCode(12, "Sacrum (S1)", "Sacrum", ANATOMICAL_STRUCTURE, SACRUM, None, (220, 180, 120)),
    13: StructureCode(13, "Presacral fat", "Presacral fat", TISSUE, codes.SCT.AdiposeTissue, SACRUM,
                      (255, 255, 160)),
}
NUMBER_OF_CLASSES = 14  # including background 0

#: level name ("L1".."S1", "L1/L2".."L5/S1") -> label-map value
LEVEL_TO_LABEL: dict[str, int] = {
    "L1": 2, "L1/L2": 3, "L2": 4, "L2/L3": 5, "L3": 6, "L3/L4": 7, "L4": 8, "L4/L5": 9, "L5": 10,
    "L5/S1": 11, "S1": 12,
}

# ----------------------------------------------------------------------------------------------
# Algorithm family (CID 7162) and procedure

ARTIFICIAL_INTELLIGENCE: Code = codes.cid7162.ArtificialIntelligence  # (123110, DCM)
PROCEDURE_REPORTED: Code = codes.LN.MRIUnspecifiedBodyRegion  # (25056-3, LN); CID 100 has no lumbar MR code
DEVICE_OBSERVER: Code = codes.DCM.Device

# ----------------------------------------------------------------------------------------------
# Measurements, dicom-outputs.md §3.2

HEIGHT: Code = codes.DCM.Height  # (121207, DCM): disc height DH and vertebral body height
MEAN: Code = codes.SCT.Mean  # derivation of the average disc height
DIAMETER: Code = codes.SCT.Diameter  # (81827009, SCT)
DHI: Code = _private("DHI", "Disc height index")
HDR: Code = _private("HDR", "Disc height-to-diameter ratio")
DELTA_SI: Code = _private("DSI", "Disc signal intensity difference (CSF-referenced)")
DELTA_SI_FAT: Code = _private("DSIFAT", "Disc signal intensity difference (fat-referenced)")
GRADE_Z: Code = _private("GRZ", "Distance to grade group mean (z)")

MILLIMETER: Code = codes.UCUM.Millimeter  # ("mm", UCUM)
NO_UNITS: Code = codes.UCUM.NoUnits  # ("1", UCUM): DHI, HDR, ΔSI, z-scores, relative deviations

#: quantity name used in quantitation.results.ReferenceDeviation.quantity -> (short code, meaning)
_QUANTITIES: dict[str, tuple[str, str]] = {
    "delta_si": ("DSI", "Disc SI difference"),
    "dh": ("DH", "Disc height"),
    "dhi": ("DHI", "Disc height index"),
    "hdr": ("HDR", "Disc height-diameter ratio"),
}
_DEVIATION_KINDS: dict[str, tuple[str, str]] = {
    "z": ("Z", "z-score"),
    "relative": ("REL", "relative deviation"),
}


def deviation_concept(quantity: str, kind: str) -> Code:
    """NUM concept of a deviation from the population reference, e.g. ("DHI-Z", 99BIANQUE, ...)."""
    try:
        q_code, q_name = _QUANTITIES[quantity]
        k_code, k_name = _DEVIATION_KINDS[kind]
    except KeyError as exc:
        raise ValueError(f"unknown reference deviation quantity/kind {quantity!r}/{kind!r}") from exc
    return _private(f"{q_code}-{k_code}", f"{q_name} {k_name} vs population ref.")


def is_known_deviation(quantity: str, kind: str) -> bool:
    return quantity in _QUANTITIES and kind in _DEVIATION_KINDS


def deviation_evaluation_concept(quantity: str) -> Code:
    """CODE concept: where a quantity lies relative to its population reference range."""
    try:
        q_code, q_name = _QUANTITIES[quantity]
    except KeyError as exc:
        raise ValueError(f"unknown reference deviation quantity {quantity!r}") from exc
    return _private(f"{q_code}-REF", f"{q_name} vs population reference")


#: |z| above this many SDs counts as outside the population reference range (about the 95 % range)
REFERENCE_RANGE_SD = 2.0
WITHIN_REFERENCE: Code = _private("REFWITHIN", "Within population reference range")
ABOVE_REFERENCE: Code = _private("REFABOVE", "Above population reference range")
BELOW_REFERENCE: Code = _private("REFBELOW", "Below population reference range")

# ----------------------------------------------------------------------------------------------
# Qualitative evaluations: grade group, status, method

GRADE_GROUP: Code = _private("MPGG", "Modified Pfirrmann grade group")
GRADE_GROUP_VALUES: dict[int, Code] = {
    1: _private("MPGG1", "Grade group 1 (modified Pfirrmann grade 1)"),
    2: _private("MPGG2", "Grade group 2 (modified Pfirrmann grade 2)"),
    3: _private("MPGG3", "Grade group 3 (modified Pfirrmann grade 3)"),
    4: _private("MPGG4", "Grade group 4 (modified Pfirrmann grade 4)"),
    5: _private("MPGG5", "Grade group 5 (modified Pfirrmann grades 5-8)"),
}

QUANTITATION_STATUS: Code = _private("QSTATUS", "Quantitation status")
STATUS_VALUES: dict[Status, Code] = {
    Status.OK: _private("QOK", "Measured"),
    Status.PARTIAL: _private("QPARTIAL", "Partially measured"),
    Status.FAILED: _private("QFAILED", "Not measurable"),
}
#: TEXT item carrying each reason a quantity could not be measured
REASON: Code = codes.DCM.Comment  # (121106, DCM, "Comment")

METHOD_VALUES: dict[Method, Code] = {
    Method.DEFAULT: _private("MDEFAULT", "bianque-node default disc quantitation"),
    Method.BIANQUE2022: _private("MBQ2022", "BianqueNet 2022 reference disc quantitation"),
}

# ----------------------------------------------------------------------------------------------
# No-series report

NO_LUMBAR_SAGITTAL_T2: Code = _private("NOSAGT2", "No lumbar sagittal T2 series found")
ANALYSIS_OUTCOME: Code = _private("OUTCOME", "Analysis outcome")
