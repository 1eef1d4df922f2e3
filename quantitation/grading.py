"""ΔSI -> "modified Pfirrmann grade group" and deviations from the population references.

The grade groups are 1, 2, 3, 4 and 5 (= modified Pfirrmann grades 5-8), as in Zheng 2022 Table 7.
They are *not* Pfirrmann grades.
"""

from __future__ import annotations

import math

from quantitation import references as ref
from quantitation.results import ReferenceDeviation


def grade_group(delta_si: float) -> tuple[int, float]:
    """Grade group (1..5) of a ΔSI value and its signed z-distance to that group's mean.

    The rule is the original ``signal_fenji`` (spec 5.9): above the group-1 mean -> 1, below the
    group-5 mean -> 5, otherwise the nearer of the two nearest group means in SD units (ties go to
    the nearest mean). It is equivalent to the fixed thresholds 106.51 / 84.31 / 59.06 / 33.15.
    The z-distance is signed: (ΔSI - mean_group) / sd_group (positive = brighter nucleus than typical).
    """
    x = float(delta_si)
    if not math.isfinite(x):
        raise ValueError(f"ΔSI must be a finite number, got {delta_si!r}")
    stats = ref.GRADE_GROUP_DSI
    if x > stats[0].mean:
        g = 0
    elif x < stats[-1].mean:
        g = len(stats) - 1
    else:
        order = sorted(range(len(stats)), key=lambda i: (abs(x - stats[i].mean), i))
        first, second = order[0], order[1]
        z1 = abs(x - stats[first].mean) / _sd(first)
        z2 = abs(x - stats[second].mean) / _sd(second)
        g = second if z2 < z1 else first
    return g + 1, (x - stats[g].mean) / _sd(g)


def _sd(i: int) -> float:
    sd = ref.GRADE_GROUP_DSI[i].sd
    assert sd is not None
    return sd


def grade_group_label(group: int) -> str:
    """'1'..'4' or '5-8' (the modified Pfirrmann grades a group stands for)."""
    return ref.GRADE_GROUP_LABELS[group - 1]


def deviations(
    level: str,
    sex: str | None,
    *,
    delta_si: float | None,
    dh_px_512: float | None,
    dhi: float | None,
    hdr: float | None,
    note: str = "",
) -> tuple[ReferenceDeviation, ...]:
    """Deviation scores of spec 5.10 for one disc level.

    * ΔSI: z-score against the healthy reference of the level (both sexes).
    * DH: relative deviation DH / mean - 1 (spec 5.10), against the sex- and level-specific mean;
      ``dh_px_512`` must be in the reference's convention (pixels of the 512 image, x0.8 included).
      A z-score ("z" kind) is reported beside it from the reference SDs that the original code ships
      but never used (documented extension).
    * DHI, HDR: z-scores against the sex- and level-specific references.
    Quantities that are None, or need a sex that is unknown, are left out.
    """
    if level not in ref.LEVELS:
        raise ValueError(f"unknown disc level {level!r}")
    suffix = f"; {note}" if note else ""
    out: list[ReferenceDeviation] = []
    if delta_si is not None:
        m = ref.HEALTHY_DSI[level]
        assert m.sd is not None
        out.append(
            ReferenceDeviation(
                quantity="delta_si",
                kind="z",
                value=(delta_si - m.mean) / m.sd,
                reference_mean=m.mean,
                reference_sd=m.sd,
                reference=f"{ref.SOURCE_BASELINE}, healthy ΔSI, {level}",
                measured=delta_si,
            )
        )
    if sex not in ref.SEX_CODE:
        return tuple(out)
    code = ref.SEX_CODE[sex]
    who = f"{ref.SOURCE_BASELINE}, sex code {code} ({ref.SEX_NAME[code]}), {level}"
    if dh_px_512 is not None:
        m = ref.DH[code][level]
        assert m.sd is not None
        out.append(
            ReferenceDeviation(
                quantity="dh",
                kind="relative",
                value=dh_px_512 / m.mean - 1.0,
                reference_mean=m.mean,
                reference_sd=m.sd,
                reference=f"{who}, DH in px of the 512 image{suffix}",
                measured=dh_px_512,
            )
        )
        out.append(
            ReferenceDeviation(
                quantity="dh",
                kind="z",
                value=(dh_px_512 - m.mean) / m.sd,
                reference_mean=m.mean,
                reference_sd=m.sd,
                reference=f"{who}, DH in px of the 512 image (SD shipped but unused by the original){suffix}",
                measured=dh_px_512,
            )
        )
    for name, value, table in (("dhi", dhi, ref.DHI), ("hdr", hdr, ref.HDR)):
        if value is None:
            continue
        m = table[code][level]
        assert m.sd is not None
        out.append(
            ReferenceDeviation(
                quantity=name,
                kind="z",
                value=(value - m.mean) / m.sd,
                reference_mean=m.mean,
                reference_sd=m.sd,
                reference=f"{who}, {name.upper()}{suffix}",
                measured=value,
            )
        )
    return tuple(out)
