"""Frozen result types that leave ``quantitation/`` (the contract with ``sr_templates/`` and the CLI).

Coordinates are (row, col) floats on the grid the label map was given on (the *canonical* grid:
rows head -> feet, columns anterior -> posterior). The pipeline maps them back to the source DICOM
pixel grid with the inverse transform kept by ``inference`` before it encodes SCOORDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

DISC_LEVELS: tuple[str, ...] = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
VERTEBRA_LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5", "S1")


class Method(str, Enum):
    """Quantitation method; recorded in every result."""

    DEFAULT = "default"
    BIANQUE2022 = "bianque2022"


class Status(str, Enum):
    OK = "ok"
    PARTIAL = "partial"  # some quantities measured, others failed (see reasons)
    FAILED = "failed"  # nothing measured (see reasons)


Point = tuple[float, float]  # (row, col)


@dataclass(frozen=True)
class Measurement:
    """One number with its unit (UCUM code: "mm", "1" for ratios, "{px}" pixels, "{SI}" signal)."""

    value: float
    unit: str


@dataclass(frozen=True)
class VertebraResult:
    level: str  # "L1".."L5", "S1"
    status: Status
    corners: tuple[Point, Point, Point, Point] | None = None  # [ant-sup, post-sup, ant-inf, post-inf]
    height_mm: float | None = None
    height_px: float | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferenceDeviation:
    """Deviation of one quantity from a population reference."""

    quantity: str  # "delta_si", "dh", "dhi", "hdr"
    kind: str  # "z" (z-score) or "relative" (value / mean - 1)
    value: float
    reference_mean: float
    reference_sd: float | None
    reference: str  # e.g. "Zheng 2022 healthy SI, L4/L5" or "Zheng 2022, male, L4/L5"
    measured: float | None = None  # the value compared, in the reference's units and convention


@dataclass(frozen=True)
class DiscResult:
    level: str  # one of DISC_LEVELS
    method: Method
    status: Status
    reasons: tuple[str, ...] = ()
    # geometry (canonical grid)
    anterior_mid: Point | None = None
    posterior_mid: Point | None = None
    height_line: tuple[Point, Point] | None = None  # a representative DH line, for SCOORD display
    outline: tuple[Point, ...] | None = None  # closed disc contour (first point not repeated)
    # measurements (None when not measurable; reasons then says why)
    dh_mm: float | None = None
    dh_px: float | None = None
    dhi: float | None = None
    hdr: float | None = None
    wd_small_mm: float | None = None
    wd_big_mm: float | None = None
    delta_si: float | None = None  # CSF-referenced 0..255 scale
    delta_si_fat: float | None = None  # presacral-fat-referenced, reported beside (default method)
    # ΔSI (CSF-referenced) recomputed on the disc outline shrunk and grown by one pixel: (lowest, highest) of
    # the three values. How far the measure depends on where the outline was drawn (issue target: the raw
    # peak difference moves by at most ``quantify.OUTLINE_SENSITIVITY_LIMIT`` grey levels; beyond it the disc gets
    # a reason).
    delta_si_outline_range: tuple[float, float] | None = None
    grade_group: int | None = None  # 1..5 ("modified Pfirrmann grade group" 1,2,3,4,5-8)
    grade_z: float | None = None  # z-distance to the chosen grade's mean
    deviations: tuple[ReferenceDeviation, ...] = ()


@dataclass(frozen=True)
class SliceQuantitation:
    method: Method
    discs: tuple[DiscResult, ...]  # always 5, in DISC_LEVELS order (failed ones included)
    vertebrae: tuple[VertebraResult, ...]  # always 6, in VERTEBRA_LEVELS order
    csf_reference: float | None = None  # CSF mode grey level
    fat_reference: float | None = None
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)
    sex: str | None = None  # "F" / "M" / None
    age_years: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
