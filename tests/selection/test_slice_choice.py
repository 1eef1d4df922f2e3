"""'best' mid-sagittal slice scoring and model->source point mapping of results."""

from __future__ import annotations

import json

import numpy as np

from dicom_node.pipeline_results import map_quantitation, results_document, write_json
from dicom_node.slice_choice import best_index, score_label_map
from quantitation.results import DISC_LEVELS, VERTEBRA_LEVELS, DiscResult, Method, SliceQuantitation, Status, VertebraResult


def _spine(discs: int, canal_rows: slice | None) -> np.ndarray:
    labels = np.zeros((120, 60), np.uint8)
    row = 5
    for k in range(6):
        labels[row : row + 12, 10:40] = 2 + 2 * k  # vertebra
        row += 12
        if k < discs:
            labels[row : row + 6, 10:40] = 3 + 2 * k  # disc
        row += 6
    if canal_rows is not None:
        labels[canal_rows, 42:48] = 1
    return labels


def test_score_counts_discs_and_canal_continuity():
    full = score_label_map(_spine(5, slice(5, 113)))
    assert full.discs_present == 5 and full.canal_fraction > 0.99
    broken = score_label_map(_spine(5, slice(5, 50)))
    assert broken.discs_present == 5 and 0.3 < broken.canal_fraction < 0.5
    missing = score_label_map(_spine(3, slice(5, 113)))
    assert missing.discs_present == 3


def test_best_index_prefers_complete_then_central():
    maps = [_spine(3, slice(5, 113)), _spine(5, slice(5, 113)), _spine(5, slice(5, 113)), _spine(5, slice(5, 60))]
    assert best_index(maps, centre_position=12, positions=[10, 11, 12, 13]) == 2
    assert best_index(maps[:2], centre_position=10, positions=[10, 11]) == 1


def _quant() -> SliceQuantitation:
    discs = tuple(
        DiscResult(level=lvl, method=Method.DEFAULT, status=Status.OK, anterior_mid=(10.0, 20.0),
                   posterior_mid=(10.0, 40.0), height_line=((8.0, 30.0), (12.0, 30.0)),
                   outline=((8.0, 20.0), (8.0, 40.0), (12.0, 40.0)), dh_mm=8.5, dhi=0.3, grade_group=2,
                   delta_si=90.0, delta_si_outline_range=(88.5, 93.0))
        if lvl == "L4/L5" else DiscResult(level=lvl, method=Method.DEFAULT, status=Status.FAILED, reasons=("no disc",))
        for lvl in DISC_LEVELS
    )
    vertebrae = tuple(VertebraResult(level=lvl, status=Status.OK, corners=((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)))
                      for lvl in VERTEBRA_LEVELS)
    return SliceQuantitation(method=Method.DEFAULT, discs=discs, vertebrae=vertebrae, pixel_spacing_mm=(0.5, 0.5))


def test_map_quantitation_maps_every_point_and_keeps_values():
    mapped = map_quantitation(_quant(), lambda pts: pts * 2.0 + np.array([1.0, -1.0]), (0.25, 0.25))
    disc = mapped.discs[3]
    assert disc.anterior_mid == (21.0, 39.0) and disc.posterior_mid == (21.0, 79.0)
    assert disc.height_line == ((17.0, 59.0), (25.0, 59.0))
    assert disc.outline[1] == (17.0, 79.0)
    assert disc.dh_mm == 8.5 and mapped.pixel_spacing_mm == (0.25, 0.25)
    assert mapped.vertebrae[0].corners[3] == (3.0, 1.0)
    assert mapped.discs[0].anterior_mid is None


def test_results_json_has_units_grades_status_reasons(tmp_path):
    doc = results_document(study_uid="1.2.3", series_uid="1.2.3.4", sop_instance_uid="1.2.3.4.5", frame_index=None,
                           quantitation=_quant(), selection_reason="series 1", algorithm={"name": "BianqueNet"},
                           outputs={"seg": "seg.dcm"})
    write_json(tmp_path / "results.json", doc)
    data = json.loads((tmp_path / "results.json").read_text())
    assert [d["level"] for d in data["discs"]] == list(DISC_LEVELS)
    l45 = data["discs"][3]
    assert l45["measurements"]["disc_height"] == {"value": 8.5, "unit": "mm"}
    assert l45["measurements"]["disc_height_index"]["unit"] == "1"
    assert l45["grade_group"] == 2 and l45["status"] == "ok"
    assert l45["measurements"]["delta_si"] == {"value": 90.0, "unit": "{SI}", "outline_range": [88.5, 93.0]}
    assert data["discs"][0]["status"] == "failed" and data["discs"][0]["reasons"] == ["no disc"]
