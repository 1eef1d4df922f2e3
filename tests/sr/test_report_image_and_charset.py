"""Report image content, the on/off switch, and a Chinese patient name surviving into every output."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest
from sr_inputs import CHINESE_NAME, draw_label_map

from sr_templates import build_outputs, build_report_image, codes
from sr_templates.report_image import PANEL_HEIGHT


def _reread(ds: pydicom.Dataset) -> tuple[pydicom.Dataset, bytes]:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    return pydicom.dcmread(BytesIO(raw)), raw


def test_report_image_shows_outlines_points_and_table(mr_slice, label_map, quantitation, algorithm):
    image, _ = _reread(build_report_image(mr_slice, label_map, quantitation, algorithm, uid_seed="job-1"))
    assert image.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert image.StudyInstanceUID == mr_slice.StudyInstanceUID
    assert image.SeriesDescription == "BianqueNet disc quantitation - report image"
    assert image.BurnedInAnnotation == "YES"
    assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == mr_slice.SOPInstanceUID
    rgb = image.pixel_array
    assert rgb.shape[0] == PANEL_HEIGHT and rgb.shape[2] == 3
    scale = PANEL_HEIGHT / mr_slice.Rows  # square pixels in the phantom
    panel_width = round(mr_slice.Columns * scale)
    panel = rgb[:, :panel_width]
    # each disc outline colour is drawn along that disc's box (rows 56..61 for L4/L5, scaled)
    l45 = np.array(codes.STRUCTURES[9].display_rgb)
    rows, _ = np.nonzero(np.all(panel == l45, axis=-1))
    assert rows.size > 20
    assert 56 * scale - 2 <= rows.min() and rows.max() <= 61 * scale + 2
    # the yellow height line of L1/L2 sits in the middle column of its box
    yellow = np.all(panel == (255, 230, 0), axis=-1)
    assert yellow[round(15.5 * scale), round(32.5 * scale) - 2: round(32.5 * scale) + 3].any()
    # the table half carries text (non-black pixels) in the header and disc rows
    table = rgb[:, panel_width:]
    assert (table[:40].max(axis=-1) > 100).sum() > 200
    assert (table[150:260].max(axis=-1) > 100).sum() > 1000


def test_report_image_of_enhanced_frame(enhanced_factory, label_map, quantitation, algorithm):
    emr = enhanced_factory("sagittal", n_frames=3, analysed_frame=2)
    image, _ = _reread(build_report_image(emr, label_map, quantitation, algorithm, frame_index=2, uid_seed="j"))
    assert image.SourceImageSequence[0].ReferencedFrameNumber == 3
    assert image.PatientOrientation == ["P", "F"]
    # the analysed frame (phantom) is shown, not frame 1 (flat grey): the panel has contrast
    assert image.pixel_array[:, :100].std() > 20


def test_report_image_switch(mr_slice, label_map, quantitation, algorithm):
    with_image = build_outputs(mr_slice, label_map, quantitation, algorithm, uid_seed="job-1")
    without = build_outputs(mr_slice, label_map, quantitation, algorithm, report_image=False, uid_seed="job-1")
    assert with_image.report_image is not None and len(with_image.datasets()) == 3
    assert without.report_image is None and len(without.datasets()) == 2
    assert [d.SOPInstanceUID for d in without.datasets()] == [d.SOPInstanceUID for d in with_image.datasets()[:2]]
    series = {d.SeriesInstanceUID for d in with_image.datasets()}
    assert len(series) == 3 and mr_slice.SeriesInstanceUID not in series
    assert [int(d.SeriesNumber) for d in with_image.datasets()] == [9901, 9902, 9903]


@pytest.mark.parametrize("sr_kind", ["enhanced", "comprehensive3d"])
def test_chinese_patient_name_survives_into_every_output(mr_factory, quantitation, algorithm, sr_kind):
    mr = mr_factory("sagittal")
    assert mr.PatientName == CHINESE_NAME and mr.SpecificCharacterSet == "ISO_IR 192"
    outputs = build_outputs(mr, draw_label_map(), quantitation, algorithm, sr_kind=sr_kind, uid_seed="job-1")
    for ds in outputs.datasets():
        back, raw = _reread(ds)
        assert back.SpecificCharacterSet == "ISO_IR 192"
        assert str(back.PatientName) == CHINESE_NAME, back.SOPClassUID
        assert back.InstitutionName == mr.InstitutionName  # non-ASCII institution from the source too
        assert back.Manufacturer == "bianque-node"
        assert "张".encode("utf-8") in raw and "第一医院".encode("utf-8") in raw


def test_source_in_another_character_set_is_re_encoded(mr_factory, quantitation, algorithm):
    """A Latin-1 source name (ISO_IR 100) comes out correctly in our UTF-8 outputs."""
    mr = mr_factory("sagittal", patient_name="Müller^Jürgen")
    mr.SpecificCharacterSet = "ISO_IR 100"
    mr.InstitutionName = "Klinik Süd"
    buffer = BytesIO()
    mr.save_as(buffer, enforce_file_format=True)
    assert "Müller".encode("latin-1") in buffer.getvalue()
    source = pydicom.dcmread(BytesIO(buffer.getvalue()))
    outputs = build_outputs(source, draw_label_map(), quantitation, algorithm, uid_seed="job-1")
    for ds in outputs.datasets():
        back, raw = _reread(ds)
        assert str(back.PatientName) == "Müller^Jürgen"
        assert back.InstitutionName == "Klinik Süd"
        assert "Müller".encode("utf-8") in raw


def test_report_image_shows_a_vertebra_plausibility_note(mr_slice, label_map, quantitation, algorithm):
    """A vertebra note (an implausible height) is written in red under the table, like the disc reasons."""
    from dataclasses import replace

    from sr_templates.report_image import _RED

    def red_pixels(q) -> int:
        rgb, _ = _reread(build_report_image(mr_slice, label_map, q, algorithm, uid_seed="job-1"))
        return int(np.all(rgb.pixel_array == _RED, axis=-1).sum())

    note = ("height 17.7 mm is 70% of the other lumbar bodies' median (25.4 mm): incomplete or merged "
            "segmentation, or a compression fracture; check the image")
    flagged = replace(quantitation, vertebrae=tuple(
        replace(v, reasons=(note,)) if v.level == "L1" else v for v in quantitation.vertebrae))
    assert red_pixels(flagged) > red_pixels(quantitation) + 100


def test_long_disc_notes_wrap_onto_ascii_lines(mr_slice, label_map, quantitation, algorithm):
    """A disc reason longer than a table line (the ΔSI outline note) is wrapped, not cut, and ΔSI is written
    dSI (the burned-in font is ASCII only): the wrapped lines hold every word, and the image gets more red
    text than with the note's first line alone."""
    from dataclasses import replace

    from sr_templates.report_image import _LINE_CHARS, _RED, _note_lines

    note = ("ΔSI depends on the disc outline: 73.8 to 91.5 when the outline is one pixel smaller or larger "
            "(the peak difference moves 12.5 grey levels, more than 3); grade group 2 to 3 over that range")
    lines = _note_lines("L3/L4", note)
    assert len(lines) == 3 and all(len(t) <= _LINE_CHARS and t.isascii() for t in lines)
    assert " ".join(t.strip() for t in lines) == "L3/L4: " + note.replace("ΔSI", "dSI")

    def red_pixels(reason: str) -> int:
        q = replace(quantitation, discs=tuple(replace(d, reasons=(reason,)) if d.level == "L3/L4" else d
                                              for d in quantitation.discs))
        rgb, _ = _reread(build_report_image(mr_slice, label_map, q, algorithm, uid_seed="job-1"))
        return int(np.all(rgb.pixel_array == _RED, axis=-1).sum())

    assert red_pixels(note) > red_pixels(lines[0][len("L3/L4: "):]) + 100
