"""Population reference constants, all in one place, with their sources.

Sources
-------
* [T7]  Zheng et al., "Automated quantitative analysis of lumbar intervertebral disc degeneration"
  (BianqueNet preprint 2021 / Nat Commun 2022), Table 7: "Quantitative ranges of ΔSI according to the
  modified Pfirrmann Grade (1-8)", grade groups 1, 2, 3, 4, 5-8 (n = 154, 1130, 1622, 1315, 1034).
  The same means and SDs are hard-coded in the official code's ``signal_fenji``
  (re-implementation spec ``bianquenet.md`` section 5.9).
* [S510] Official BianqueNet code, ``quantitative_results`` sheet constants, transcribed in the
  re-implementation spec ``bianquenet.md`` section 5.10. Healthy-disc ΔSI per level (not sex-specific)
  and DH / DHI / HDR means and SDs per sex and level. **Sex code 0 = female, 1 = male** (the code's
  variable names ``*_male_*`` / ``*_female_*`` are swapped; spec 5.10 gives the evidence). DH is in
  pixels of the 512x512 export and contains the original ×0.8 factor (spec 5.5); DHI / HDR are
  unitless but measured with the original corner definitions (spec 5.1-5.7).
* [A]   Appendix A of the spec: the regression output of the official sample, used only in tests.

Levels are always in the order L1/L2, L2/L3, L3/L4, L4/L5, L5/S1.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS: tuple[str, ...] = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")

SOURCE_TABLE7 = "Zheng 2022 Table 7 (ΔSI by modified Pfirrmann grade group)"
SOURCE_BASELINE = "Zheng 2022 BianqueNet baseline constants (spec 5.10)"


@dataclass(frozen=True)
class MeanSD:
    mean: float
    sd: float | None


# ---- [T7] ΔSI per modified Pfirrmann grade group (1, 2, 3, 4, 5-8) -------------------------------------
GRADE_GROUP_LABELS: tuple[str, ...] = ("1", "2", "3", "4", "5-8")
GRADE_GROUP_DSI: tuple[MeanSD, ...] = (
    MeanSD(121.97, 9.96),
    MeanSD(95.34, 7.20),
    MeanSD(72.34, 7.81),
    MeanSD(44.63, 8.49),
    MeanSD(20.60, 9.28),
)


def _boundary(g: int) -> float:
    """ΔSI where group g+1 and g+2 (1-based) are at equal z-distance (spec 5.9)."""
    a, b = GRADE_GROUP_DSI[g], GRADE_GROUP_DSI[g + 1]
    assert a.sd is not None and b.sd is not None
    return (a.mean * b.sd + b.mean * a.sd) / (a.sd + b.sd)


# Exact boundaries implied by the nearest-z rule; rounded they are 106.51, 84.31, 59.06, 33.15 (spec 5.9).
GRADE_GROUP_BOUNDARIES: tuple[float, ...] = tuple(_boundary(g) for g in range(4))
GRADE_GROUP_BOUNDARIES_ROUNDED: tuple[float, ...] = (106.51, 84.31, 59.06, 33.15)

# ---- [S510] healthy ΔSI per level (z-score reference, both sexes) -------------------------------------------
HEALTHY_DSI: dict[str, MeanSD] = {
    lvl: MeanSD(m, s)
    for lvl, m, s in zip(
        LEVELS, (99.86, 96.98, 94.15, 93.21, 99.70), (12.13, 10.28, 7.91, 9.05, 9.92), strict=True
    )
}


def _by_level(means: tuple[float, ...], sds: tuple[float, ...]) -> dict[str, MeanSD]:
    return {lvl: MeanSD(m, s) for lvl, m, s in zip(LEVELS, means, sds, strict=True)}


# ---- [S510] DH (px of the 512 image, original x0.8 convention), DHI, HDR by sex code and level --------------
# sex code 0 = female (the code's "*_male_*" arrays), 1 = male (the code's "*_female_*" arrays)
DH: dict[int, dict[str, MeanSD]] = {
    0: _by_level((13.15, 14.86, 16.15, 17.10, 17.11), (1.28, 1.45, 1.47, 1.65, 2.24)),
    1: _by_level((14.10, 16.37, 17.51, 18.42, 17.65), (1.53, 1.63, 1.83, 1.91, 2.39)),
}
DHI: dict[int, dict[str, MeanSD]] = {
    0: _by_level((0.2768, 0.3083, 0.3398, 0.3688, 0.3715), (0.0351, 0.0386, 0.0413, 0.0465, 0.0648)),
    1: _by_level((0.2919, 0.3292, 0.3573, 0.3841, 0.3705), (0.0392, 0.0408, 0.0484, 0.0497, 0.0622)),
}
HDR: dict[int, dict[str, MeanSD]] = {
    0: _by_level((0.2164, 0.2315, 0.2468, 0.2572, 0.2707), (0.0222, 0.0239, 0.0277, 0.0311, 0.0369)),
    1: _by_level((0.2119, 0.2283, 0.2406, 0.2490, 0.2545), (0.0237, 0.0248, 0.0268, 0.0283, 0.0318)),
}

SEX_CODE: dict[str, int] = {"F": 0, "M": 1}
SEX_NAME: dict[int, str] = {0: "female", 1: "male"}

# The DH reference is in pixels of a 512 x 512 export (spec 5.10 / F9).
DH_REFERENCE_GRID: tuple[int, int] = (512, 512)
