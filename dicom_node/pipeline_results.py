"""What a processed study yields, outside DICOM: model-grid -> source-grid points, results.json, the table.

Quantitation runs on the model grid (the 8-bit image the network saw); the SR's SCOORDs and the
report image need points on the source DICOM pixel grid. :func:`map_quantitation` maps every point
of a :class:`~quantitation.results.SliceQuantitation` with the inverse transform kept by
``inference`` (a callable taking an (N, 2) array of (row, col) model-grid points).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from quantitation.results import DiscResult, SliceQuantitation, VertebraResult

PointMapper = Callable[[np.ndarray], np.ndarray]  # (N, 2) (row, col) model grid -> (N, 2) source grid

# measurement name -> (attribute, unit); units are UCUM codes as in the SR
DISC_MEASUREMENTS: tuple[tuple[str, str, str], ...] = (
    ("disc_height", "dh_mm", "mm"),
    ("disc_height_px", "dh_px", "{px}"),
    ("disc_height_index", "dhi", "1"),
    ("height_to_diameter_ratio", "hdr", "1"),
    ("disc_width_small", "wd_small_mm", "mm"),
    ("disc_width_big", "wd_big_mm", "mm"),
    ("delta_si", "delta_si", "{SI}"),
    ("delta_si_fat", "delta_si_fat", "{SI}"),
)


def _map_points(mapper: PointMapper, points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    array = np.asarray(points, dtype=float).reshape(-1, 2)
    mapped = np.asarray(mapper(array), dtype=float).reshape(-1, 2)
    return tuple((float(r), float(c)) for r, c in mapped)


def _map_point(mapper: PointMapper, point: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if point is None else _map_points(mapper, [point])[0]


def map_disc(disc: DiscResult, mapper: PointMapper) -> DiscResult:
    line = disc.height_line
    return dataclasses.replace(
        disc,
        anterior_mid=_map_point(mapper, disc.anterior_mid),
        posterior_mid=_map_point(mapper, disc.posterior_mid),
        height_line=None if line is None else _map_points(mapper, list(line)),  # type: ignore[arg-type]
        outline=None if disc.outline is None else _map_points(mapper, list(disc.outline)),
    )


def map_vertebra(vertebra: VertebraResult, mapper: PointMapper) -> VertebraResult:
    corners = vertebra.corners
    return dataclasses.replace(
        vertebra,
        corners=None if corners is None else _map_points(mapper, list(corners)),  # type: ignore[arg-type]
    )


def map_quantitation(
    result: SliceQuantitation, mapper: PointMapper, source_pixel_spacing_mm: tuple[float, float] | None = None
) -> SliceQuantitation:
    """The same result with every point on the source grid (values in mm are unchanged)."""
    return dataclasses.replace(
        result,
        discs=tuple(map_disc(d, mapper) for d in result.discs),
        vertebrae=tuple(map_vertebra(v, mapper) for v in result.vertebrae),
        pixel_spacing_mm=source_pixel_spacing_mm or result.pixel_spacing_mm,
    )


# --------------------------------------------------------------------------------------------------
# results.json


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def disc_record(disc: DiscResult) -> dict[str, Any]:
    """One disc for results.json: level, every measurement with its unit, grade, status, reasons."""
    measurements = {
        name: {"value": _jsonable(getattr(disc, attribute)), "unit": unit}
        for name, attribute, unit in DISC_MEASUREMENTS
        if getattr(disc, attribute) is not None
    }
    if "delta_si" in measurements and disc.delta_si_outline_range is not None:
        # ΔSI on the outline shrunk / grown by one pixel: its lowest and highest value over the three
        measurements["delta_si"]["outline_range"] = [_jsonable(v) for v in disc.delta_si_outline_range]
    return {
        "level": disc.level,
        "status": disc.status.value,
        "reasons": list(disc.reasons),
        "method": disc.method.value,
        "measurements": measurements,
        "grade_group": disc.grade_group,
        "grade_z": _jsonable(disc.grade_z),
        "deviations": [_jsonable(d) for d in disc.deviations],
    }


def results_document(
    *,
    study_uid: str,
    series_uid: str | None,
    sop_instance_uid: str | None,
    frame_index: int | None,
    quantitation: SliceQuantitation | None,
    selection_reason: str,
    algorithm: dict[str, str],
    outputs: dict[str, str],
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "study_instance_uid": study_uid,
        "selection": {"reason": selection_reason, "series_instance_uid": series_uid},
        "source": {"sop_instance_uid": sop_instance_uid, "frame_index": frame_index},
        "algorithm": algorithm,
        "outputs": outputs,
        "warnings": list(warnings),
    }
    if quantitation is None:
        doc["discs"] = []
        doc["vertebrae"] = []
        return doc
    doc["method"] = quantitation.method.value
    doc["patient"] = {"sex": quantitation.sex, "age_years": quantitation.age_years}
    doc["references"] = {"csf": quantitation.csf_reference, "presacral_fat": quantitation.fat_reference}
    doc["pixel_spacing_mm"] = list(quantitation.pixel_spacing_mm)
    doc["discs"] = [disc_record(d) for d in quantitation.discs]
    doc["vertebrae"] = [
        {
            "level": v.level,
            "status": v.status.value,
            "reasons": list(v.reasons),
            "measurements": ({"vertebral_height": {"value": v.height_mm, "unit": "mm"}} if v.height_mm is not None else {}),
        }
        for v in quantitation.vertebrae
    ]
    doc["warnings"] = list(warnings) + list(quantitation.warnings)
    return doc


def write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(document), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------
# the per-disc table (rich)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def disc_table(quantitation: SliceQuantitation, title: str = "") -> Any:
    from rich.table import Table

    table = Table(title=title or None)
    for column in ("disc", "status", "DH mm", "DHI", "HDR", "ΔSI", "grade group", "reasons"):
        table.add_column(column, overflow="fold")
    for d in quantitation.discs:
        grade = "-" if d.grade_group is None else ("5-8" if d.grade_group == 5 else str(d.grade_group))
        table.add_row(
            d.level,
            d.status.value,
            _fmt(d.dh_mm),
            _fmt(d.dhi, 3),
            _fmt(d.hdr, 3),
            _fmt(d.delta_si, 1),
            grade,
            "; ".join(d.reasons),
        )
    return table
