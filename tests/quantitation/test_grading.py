"""Grade groups from ΔSI (spec 5.9, paper Table 7) and reference deviations (spec 5.10, Appendix A)."""

from __future__ import annotations

import numpy as np
import pytest

from quantitation import grade_group, grade_group_label
from quantitation import references as ref
from quantitation.grading import deviations

ROUNDED = (106.51, 84.31, 59.06, 33.15)


def test_table7_constants_and_boundaries() -> None:
    assert [(m.mean, m.sd) for m in ref.GRADE_GROUP_DSI] == [
        (121.97, 9.96), (95.34, 7.20), (72.34, 7.81), (44.63, 8.49), (20.60, 9.28)
    ]
    assert [round(b, 2) for b in ref.GRADE_GROUP_BOUNDARIES] == list(ROUNDED)


@pytest.mark.parametrize("k", range(4))
def test_grade_at_and_around_each_boundary(k: int) -> None:
    exact = ref.GRADE_GROUP_BOUNDARIES[k]
    assert grade_group(exact + 1e-6)[0] == k + 1
    assert grade_group(exact - 1e-6)[0] == k + 2
    assert grade_group(ROUNDED[k] + 0.01)[0] == k + 1
    assert grade_group(ROUNDED[k] - 0.01)[0] == k + 2
    # at the boundary the two groups' z-distances are equal (that is what defines it)
    a, b = ref.GRADE_GROUP_DSI[k], ref.GRADE_GROUP_DSI[k + 1]
    assert abs(exact - a.mean) / a.sd == pytest.approx(abs(exact - b.mean) / b.sd, rel=1e-12)
    assert grade_group(exact)[0] in (k + 1, k + 2)


def test_threshold_scan_matches_fixed_thresholds() -> None:
    for x in np.arange(-5.0, 200.0, 0.01):
        expect = 1 + sum(x < b for b in ref.GRADE_GROUP_BOUNDARIES)
        assert grade_group(float(x))[0] == expect, x


@pytest.mark.parametrize(
    ("dsi", "group", "z"),
    [(121.97, 1, 0.0), (150.0, 1, (150 - 121.97) / 9.96), (95.34, 2, 0.0), (72.34 - 7.81, 3, -1.0),
     (44.63 + 8.49, 4, 1.0), (0.0, 5, -20.60 / 9.28)],
)
def test_signed_z_distance(dsi: float, group: int, z: float) -> None:
    g, got = grade_group(dsi)
    assert g == group
    assert got == pytest.approx(z, abs=1e-9)


def test_group_labels_and_bad_input() -> None:
    assert [grade_group_label(g) for g in range(1, 6)] == ["1", "2", "3", "4", "5-8"]
    with pytest.raises(ValueError):
        grade_group(float("nan"))


# Appendix A: the official sample, sex 1 (male): DH, DHI, HDR, ΔSI -> SI z, DH rel, DHI z, HDR z
APPENDIX_A = [
    ("L1/L2", 17.83776, 0.40825, 0.27656, 28.15951, -5.91101, 0.26509, 2.96809, 2.72839),
    ("L2/L3", 21.25431, 0.53554, 0.28316, 21.90184, -7.30332, 0.29837, 5.05727, 2.21227),
    ("L3/L4", 20.25784, 0.53408, 0.24694, 26.59509, -8.54044, 0.15693, 3.65252, 0.23644),
    ("L4/L5", 19.67202, 0.50173, 0.25698, 6.25767, -9.60799, 0.06797, 2.36679, 0.28200),
    ("L5/S1", 12.23999, 0.31975, 0.16527, 7.82209, -9.26189, -0.30652, -0.81599, -2.80599),
]


@pytest.mark.parametrize("row", APPENDIX_A, ids=[r[0] for r in APPENDIX_A])
def test_appendix_a_deviations_male(row: tuple) -> None:
    level, dh, dhi, hdr, dsi, si_z, dh_rel, dhi_z, hdr_z = row
    assert grade_group(dsi)[0] == 5
    devs = {(d.quantity, d.kind): d for d in deviations(level, "M", delta_si=dsi, dh_px_512=dh, dhi=dhi, hdr=hdr)}
    assert devs[("delta_si", "z")].value == pytest.approx(si_z, abs=2e-5)
    assert devs[("dh", "relative")].value == pytest.approx(dh_rel, abs=2e-5)
    assert devs[("dhi", "z")].value == pytest.approx(dhi_z, abs=2e-4)
    assert devs[("hdr", "z")].value == pytest.approx(hdr_z, abs=2e-4)
    assert "male" in devs[("dhi", "z")].reference and "sex code 1" in devs[("dhi", "z")].reference
    assert devs[("dh", "relative")].measured == dh


def test_appendix_a_delta_si_from_raw_differences() -> None:
    # CSF mode 163 and raw peak differences 18/14/17/4/5 give the published ΔSI
    from quantitation.signal_intensity import delta_si

    for d, expect in zip((18, 14, 17, 4, 5), (28.15951, 21.90184, 26.59509, 6.25767, 7.82209), strict=True):
        assert delta_si(d, 163) == pytest.approx(expect, abs=1e-5)


def test_female_uses_sex_code_0_and_unknown_sex_gives_only_si() -> None:
    f = {(d.quantity, d.kind): d for d in deviations("L4/L5", "F", delta_si=90.0, dh_px_512=17.10, dhi=0.3688, hdr=0.2572)}
    assert f[("dh", "relative")].value == pytest.approx(0.0)
    assert f[("dhi", "z")].value == pytest.approx(0.0)
    assert f[("hdr", "z")].value == pytest.approx(0.0)
    assert "female" in f[("hdr", "z")].reference
    none = deviations("L4/L5", None, delta_si=90.0, dh_px_512=17.1, dhi=0.3, hdr=0.2)
    assert [(d.quantity, d.kind) for d in none] == [("delta_si", "z")]
