"""Secondary Capture report image: the slice with coloured outlines, measured points and a value table.

For PACS viewers that display neither SEG nor SR. Text is burned in with OpenCV's Hershey font
(ASCII only: "dSI" stands for ΔSI). Patient identity is not burned in (the PACS shows it from the
header), so the pixels carry no PHI beyond the anatomy.
"""

from __future__ import annotations

import textwrap

import cv2
import highdicom as hd
import numpy as np
from pydicom import Dataset

from quantitation.results import DiscResult, Point, SliceQuantitation, Status
from sr_templates import codes
from sr_templates.identity import MANUFACTURER, AlgorithmInfo, derive_uid
from sr_templates.segmentation import OUTPUT_CHARACTER_SET
from sr_templates.source_slice import (
    institution_kwargs,
    check_frame_index,
    check_label_map,
    frame_numbers,
    _frame_item,
    frame_pixels,
    metadata_copy,
    pixel_spacing_mm,
)

REPORT_SERIES_NUMBER = 9903
REPORT_SERIES_DESCRIPTION = "BianqueNet disc quantitation - report image"
PANEL_HEIGHT = 512
TABLE_WIDTH = 620
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_GREY = (170, 170, 170)
_YELLOW = (255, 230, 0)
_RED = (255, 90, 90)


def _window(pixels: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(pixels, [1.0, 99.5]) if pixels.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((pixels - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


class _Panel:
    """The slice scaled to PANEL_HEIGHT rows with square display pixels (physical aspect kept)."""

    def __init__(self, pixels: np.ndarray, spacing_mm: tuple[float, float]) -> None:
        rows, cols = pixels.shape
        self.scale_r = PANEL_HEIGHT / rows
        self.scale_c = self.scale_r * spacing_mm[1] / spacing_mm[0]
        self.size = (max(1, round(cols * self.scale_c)), PANEL_HEIGHT)  # (width, height) for cv2
        grey = cv2.resize(_window(pixels), self.size, interpolation=cv2.INTER_LINEAR)
        self.rgb = np.ascontiguousarray(np.stack([grey] * 3, axis=-1))

    def xy(self, point: Point) -> tuple[int, int]:
        row, col = point
        return round((col + 0.5) * self.scale_c), round((row + 0.5) * self.scale_r)

    def outline(self, label_map: np.ndarray) -> None:
        for value in (int(v) for v in np.unique(label_map) if v != 0):
            structure = codes.STRUCTURES[value]
            mask = cv2.resize((label_map == value).astype(np.uint8), self.size, interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(self.rgb, contours, -1, structure.display_rgb, 1)

    def points(self, quantitation: SliceQuantitation) -> None:
        for disc in quantitation.discs:
            if disc.height_line is not None:
                cv2.line(self.rgb, self.xy(disc.height_line[0]), self.xy(disc.height_line[1]), _YELLOW, 1)
            for mid in (disc.anterior_mid, disc.posterior_mid):
                if mid is not None:
                    cv2.circle(self.rgb, self.xy(mid), 3, _YELLOW, -1)
            ends = [p for p in (disc.anterior_mid, disc.posterior_mid) if p is not None]
            if ends:
                (w, _), _ = cv2.getTextSize(disc.level, _FONT, 0.4, 1)
                xs = [self.xy(p)[0] for p in ends]
                y = self.xy(ends[0])[1]
                x = min(xs) - w - 6 if min(xs) - w - 6 >= 0 else min(max(xs) + 6, self.size[0] - w)
                cv2.putText(self.rgb, disc.level, (x, y + 4), _FONT, 0.4, _WHITE, 1, cv2.LINE_AA)
        for vertebra in quantitation.vertebrae:
            for corner in vertebra.corners or ():
                cv2.circle(self.rgb, self.xy(corner), 2, (0, 255, 255), -1)


def _orientation_letter(vector: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(vector)))
    positive = vector[axis] >= 0
    return (("L", "R"), ("P", "A"), ("H", "F"))[axis][0 if positive else 1]


def patient_orientation(source: Dataset, frame_index: int | None) -> tuple[str, str]:
    """Patient Orientation (row direction, column direction) letters of the slice's dominant axes."""
    if "ImageOrientationPatient" in source:
        iop = np.asarray(source.ImageOrientationPatient, dtype=float)
    else:
        item = _frame_item(source, frame_index or 0, "PlaneOrientationSequence", "ImageOrientationPatient")
        if item is None:
            return ("L", "P")  # should not happen: metadata_copy already checked geometry
        iop = np.asarray(item.ImageOrientationPatient, dtype=float)
    return _orientation_letter(iop[:3]), _orientation_letter(iop[3:])


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _disc_row(disc: DiscResult) -> list[str]:
    grade = "-" if disc.grade_group is None else ("5-8" if disc.grade_group == 5 else str(disc.grade_group))
    return [disc.level, _fmt(disc.dh_mm, 1), _fmt(disc.dhi, 3), _fmt(disc.hdr, 3), _fmt(disc.delta_si, 1), grade,
            disc.status.value]


_LINE_CHARS = 90  # characters per table line at the small font


def _ascii(text: str) -> str:
    return text.replace("Δ", "d").encode("ascii", "replace").decode("ascii")


def _note_lines(structure: str, note: str) -> list[str]:
    """``"<structure>: <note>"`` in ASCII, wrapped to table lines (continuations indented)."""
    return textwrap.wrap(_ascii(f"{structure}: {note}"), _LINE_CHARS, subsequent_indent="    ")


def _table(quantitation: SliceQuantitation, algorithm: AlgorithmInfo, height: int) -> np.ndarray:
    table = np.zeros((height, TABLE_WIDTH, 3), dtype=np.uint8)
    y = 28

    def line(text: str, colour: tuple[int, int, int] = _WHITE, x: int = 12, scale: float = 0.5) -> None:
        nonlocal y
        cv2.putText(table, _ascii(text)[:_LINE_CHARS], (x, y), _FONT, scale, colour, 1, cv2.LINE_AA)
        y += 22

    line("BianqueNet disc quantitation", scale=0.7)
    line(f"{algorithm.name} {algorithm.version} ({algorithm.variant}), method: {quantitation.method.value}", _GREY)
    line("Automated measurements - to be reviewed by a radiologist", _GREY)
    y += 8
    columns = (12, 82, 162, 232, 302, 382, 460)
    header = ["Level", "DH mm", "DHI", "HDR", "dSI", "Grade", "Status"]
    for x, text in zip(columns, header, strict=True):
        cv2.putText(table, text, (x, y), _FONT, 0.5, _YELLOW, 1, cv2.LINE_AA)
    y += 24
    for disc in quantitation.discs:
        colour = _WHITE if disc.status == Status.OK else _RED
        for x, text in zip(columns, _disc_row(disc), strict=True):
            cv2.putText(table, text, (x, y), _FONT, 0.5, colour, 1, cv2.LINE_AA)
        y += 22
    y += 8
    heights = [f"{v.level} {_fmt(v.height_mm, 1)}" for v in quantitation.vertebrae]
    line("Vertebral body height (mm): " + ", ".join(heights[:3]), _GREY)
    line("   " + ", ".join(heights[3:]), _GREY)
    y += 4
    for disc in quantitation.discs:
        for reason in disc.reasons:
            for text in _note_lines(disc.level, reason):
                if y < height - 10:
                    line(text, _RED, scale=0.45)
    for vertebra in quantitation.vertebrae:
        for reason in vertebra.reasons if vertebra.status == Status.OK else ():
            if y < height - 10:  # plausibility notes; the first clause carries the numbers
                line(f"{vertebra.level}: {reason.split('):')[0]}) - check the image", _RED, scale=0.45)
    grades = "Grade = modified Pfirrmann grade group (1, 2, 3, 4, 5-8); dSI = disc signal difference"
    if y < height - 10:
        line(grades, _GREY, scale=0.4)
    return table


def render_report(pixels: np.ndarray, label_map: np.ndarray, quantitation: SliceQuantitation,
                  algorithm: AlgorithmInfo, spacing_mm: tuple[float, float]) -> np.ndarray:
    """RGB uint8 report: slice panel (outlines + points) beside the value table."""
    panel = _Panel(pixels, spacing_mm)
    panel.outline(label_map)
    panel.points(quantitation)
    table = _table(quantitation, algorithm, PANEL_HEIGHT)
    return np.ascontiguousarray(np.concatenate([panel.rgb, table], axis=1))


def build_report_image(
    source: Dataset,
    label_map: np.ndarray,
    quantitation: SliceQuantitation,
    algorithm: AlgorithmInfo,
    *,
    frame_index: int | None = None,
    series_number: int = REPORT_SERIES_NUMBER,
    uid_seed: str,
) -> Dataset:
    """Secondary Capture image (RGB) of the analysed slice with outlines, points and a value table.

    ``source`` must carry its pixel data here. ``label_map`` and every point of ``quantitation``
    are on the source pixel grid (see :func:`sr_templates.build_measurement_report`).
    """
    frame_index = check_frame_index(source, frame_index)
    labels = check_label_map(source, label_map)
    pixels = frame_pixels(source, frame_index)
    spacing = pixel_spacing_mm(source, frame_index)
    rgb = render_report(pixels, labels, quantitation, algorithm, spacing)
    src = metadata_copy(source, frame_index)
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=src,
        pixel_array=rgb,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        patient_orientation=patient_orientation(src, frame_index),
        series_instance_uid=derive_uid(uid_seed, "report-image", "series"),
        series_number=series_number,
        sop_instance_uid=derive_uid(uid_seed, "report-image", "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=REPORT_SERIES_DESCRIPTION,
        specific_character_set=OUTPUT_CHARACTER_SET,
        **institution_kwargs(src),
        manufacturer_model_name=algorithm.model_name,
        software_versions=algorithm.software_version,
        device_serial_number=algorithm.serial_number,
    )
    if src.get("StudyDescription"):
        image.StudyDescription = src.StudyDescription  # SCImage leaves it out; the SEG and SR carry it
    # General Series Laterality (2C) is required unless an unpaired body part is named: name it. The
    # report shows the lumbar spine whatever the source says (LSPINE when the source names none).
    image.BodyPartExamined = src.get("BodyPartExamined") or "LSPINE"
    image.BurnedInAnnotation = "YES"
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.DerivationDescription = "BianqueNet segmentation outlines and disc measurements over the source slice"
    ref = Dataset()
    ref.ReferencedSOPClassUID = src.SOPClassUID
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    if frame_index is not None:
        ref.ReferencedFrameNumber = frame_numbers(frame_index)[0]
    image.SourceImageSequence = [ref]
    return image
