"""ΔSI against radiologists' Pfirrmann grades on the real SPIDER T2-SPACE slices.

Usage:  .venv/bin/python bench/spider_delta_si.py [--data ../shared/data/spider] [--out bench/results/spider_delta_si.md]

For each of the 30 patients in ``spider/t2space_png`` it takes the central sagittal slice (and, as a
secondary analysis, the median over the three central slices), finds the disc components (mask value 29,
>= 200 px), numbers them bottom-up (SPIDER's "IVD label": 1 = lowest disc, normally L5/S1), measures the
disc peak difference with both quantitation methods, normalises it by the CSF reference taken from the
spinal-canal mask (value 150; canal pixels between the top of the highest and the bottom of the lowest
graded disc), and compares ΔSI with the Pfirrmann grade of ``radiological_gradings.csv``: Spearman
correlation per level and overall, and the confusion matrix of our grade groups against Pfirrmann 1-5.
Reads the shared data in place (never copies it) and writes one Markdown report.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quantitation import grade_group  # noqa: E402
from quantitation import signal_intensity as sig  # noqa: E402
from quantitation.masks import crop  # noqa: E402
from quantitation.outline_registration import REGISTRATION_REACH_PX  # noqa: E402

DISC, CANAL = 29, 150
LEVEL_NAME = {1: "L5/S1", 2: "L4/L5", 3: "L3/L4", 4: "L2/L3", 5: "L1/L2"}


@dataclass(frozen=True)
class DiscRow:
    patient: int
    ivd: int
    pfirrmann: int
    dsi_default: float
    dsi_original: float
    dsi_default_3: float
    n_px: int


def _discs(mask: np.ndarray) -> list[np.ndarray]:
    """Disc components >= 200 px, sorted bottom-up (caudal first)."""
    n, lab, stats, cents = cv2.connectedComponentsWithStats((mask == DISC).astype(np.uint8), connectivity=8)
    comps = [(cents[i][1], lab == i) for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 200]
    comps.sort(key=lambda t: -t[0])
    return [m for _, m in comps]


def _crop(img: np.ndarray, m: np.ndarray, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    c = crop(m, margin)
    return img[c.box], c.mask


def _csf_in_canal(img: np.ndarray, canal: np.ndarray) -> np.ndarray:
    """The bright (Otsu) class of the canal pixels: CSF, without cord, roots and canal-wall partial volume."""
    values = img[canal].reshape(-1, 1)
    t, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return canal & (img > t)


saturated = [0]  # slices whose CSF reference is at 255 (clipped by the per-slice rescaling)


def _slice_measures(img: np.ndarray, mask: np.ndarray, graded: set[int]) -> dict[int, tuple[float, float, int]]:
    """IVD label -> (ΔSI default, ΔSI bianque2022, pixels) on one slice."""
    discs = _discs(mask)
    labelled = {i + 1: m for i, m in enumerate(discs) if i + 1 in graded}
    if not labelled:
        return {}
    rows = np.concatenate([np.nonzero(m)[0] for m in labelled.values()])
    canal = mask == CANAL
    canal[: rows.min()] = False
    canal[rows.max() + 1 :] = False
    if canal.sum() < 50:
        return {}
    csf = _csf_in_canal(img, canal)
    ci, cm = _crop(img, csf)
    ref_default = sig.robust_level(ci[cm], weights=sig.rim_weights(cm))
    ref_original = float(sig.original_mode(img[csf]))
    saturated[0] += int(ref_original >= 255)
    out = {}
    for ivd, m in labelled.items():
        di, dm = _crop(img, m, REGISTRATION_REACH_PX + 3)
        d_def = sig.registered_disc_peaks(di, dm).difference  # as quantify_slice (no label map: grows anywhere)
        d_orig = sig.original_peaks(img[m]).difference
        out[ivd] = (
            sig.delta_si(d_def, ref_default) if ref_default > 0 else float("nan"),
            sig.delta_si(d_orig, ref_original) if ref_original > 0 else float("nan"),
            int(m.sum()),
        )
    return out


def collect(data: Path) -> tuple[list[DiscRow], dict[str, int]]:
    root = data / "t2space_png"
    grades: dict[int, dict[int, int]] = defaultdict(dict)
    with (data / "radiological_gradings.csv").open() as fh:
        for r in csv.DictReader(fh):
            grades[int(r["Patient"])][int(r["IVD label"])] = int(r["Pfirrman grade"])
    by: dict[int, list[dict[str, str]]] = defaultdict(list)
    with (root / "manifest.csv").open() as fh:
        for r in csv.DictReader(fh):
            by[int(r["subject"])].append(r)
    rows: list[DiscRow] = []
    stats = {"patients": 0, "slices": 0, "components_without_grade": 0}
    for patient, rs in sorted(by.items()):
        rs.sort(key=lambda r: int(r["slice"]))
        mid = len(rs) // 2
        graded = {k for k in grades[patient] if k >= 1}
        per_slice = []
        for r in rs[mid - 1 : mid + 2]:
            img = np.array(Image.open(root / r["image_file"]).convert("L"))
            mask = np.array(Image.open(root / r["mask_file"]).convert("L"))
            per_slice.append(_slice_measures(img, mask, graded))
            stats["slices"] += 1
        centre = per_slice[1]
        stats["saturated_slices"] = saturated[0]
        stats["patients"] += 1
        mask = np.array(Image.open(root / rs[mid]["mask_file"]).convert("L"))
        stats["components_without_grade"] += max(0, len(_discs(mask)) - len(graded))
        for ivd, (d_def, d_orig, n_px) in sorted(centre.items()):
            three = [s[ivd][0] for s in per_slice if ivd in s and np.isfinite(s[ivd][0])]
            rows.append(
                DiscRow(patient, ivd, grades[patient][ivd], d_def, d_orig, float(np.median(three)) if three else float("nan"), n_px)
            )
    return rows, stats


def _rho(x: list[float], y: list[int]) -> str:
    keep = [(a, b) for a, b in zip(x, y, strict=True) if np.isfinite(a)]
    if len(keep) < 4 or len({b for _, b in keep}) < 2:
        return "n/a"
    r, p = spearmanr([a for a, _ in keep], [b for _, b in keep])
    dropped = len(x) - len(keep)
    return f"{r:+.2f} (p={p:.2g})" + (f", {dropped} without reference" if dropped else "")


def _confusion(rows: list[DiscRow], attr: str) -> str:
    m = np.zeros((5, 5), dtype=int)
    for r in rows:
        if not np.isfinite(getattr(r, attr)):
            continue
        g, _ = grade_group(getattr(r, attr))
        m[r.pfirrmann - 1, g - 1] += 1
    head = "| Pfirrmann \\ our group | 1 | 2 | 3 | 4 | 5 (5-8) | n |\n|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {i + 1} | " + " | ".join(str(v) for v in m[i]) + f" | {m[i].sum()} |\n" for i in range(5)
    )
    agree = int(np.trace(m))
    return head + body + f"\nExact agreement (group k = Pfirrmann k): {agree}/{m.sum()} ({agree / max(m.sum(), 1):.0%}).\n"


def report(rows: list[DiscRow], stats: dict[str, int]) -> str:
    lumbar = [r for r in rows if r.ivd <= 5]
    lines = [
        "# ΔSI against Pfirrmann grade on real SPIDER slices",
        "",
        "Generated by `bench/spider_delta_si.py` (re-run it to reproduce; it reads `../shared/data/spider` in place).",
        "",
        "## Data and method",
        "",
        f"* {stats['patients']} patients of SPIDER's training split, T2-SPACE (3-D, Siemens 1.5 T), the central sagittal",
        "  slice of the 13 stored per patient (plus the two neighbours for the 3-slice median variant).",
        "* Discs: connected components of the disc mask (value 29, >= 200 px), numbered bottom-up = SPIDER `IVD label`",
        "  (1 = lowest disc, normally L5/S1). Components above the graded count are ignored"
        f" ({stats['components_without_grade']} on the central slices).",
        "* CSF reference: the spinal-canal mask (value 150) between the highest and lowest graded disc. SPIDER's canal",
        "  label holds CSF *and* neural tissue (conus, cauda equina) and wall partial volume; on most slices its",
        "  dominant grey level is dark (about 20-35), not CSF. The script therefore keeps the bright Otsu class of",
        "  the canal pixels as CSF (BianqueNet's own CSF class is CSF only, so the product needs no such step).",
        f"* {stats['saturated_slices']} of {stats['slices']} slices have their CSF reference at 255: the per-slice min-max",
        "  rescaling clipped the CSF, so their reference is too low and their ΔSI too high.",
        "* `default`: disc outline registered to the image (`outline_registration`), then a depth-weighted, saturation-free, smoothed histogram and soft peak pair (`signal_intensity.registered_disc_peaks`);",
        "  reference = main peak of the canal's CSF class (rim-weighted).",
        "  `bianque2022`: the original mode / distance-weighted second peak; reference = canal mode (spec 5.8).",
        "* ΔSI = peak difference x 255 / reference; grade group from the thresholds of spec 5.9 (Table 7).",
        f"* Discs measured: {len(rows)} ({len(lumbar)} at IVD labels 1-5, i.e. L5/S1 .. L1/L2).",
        "",
        "## Spearman correlation of ΔSI with the Pfirrmann grade",
        "",
        "The paper reports a strong negative correlation (R = -0.966 for its grade groups, Table 6, on 2-D T2 TSE",
        "exports). A negative rho means: higher grade, lower ΔSI.",
        "",
        "| level (IVD label) | n | default | bianque2022 | default, 3-slice median |",
        "|---|---|---|---|---|",
    ]
    for ivd in range(1, 6):
        sel = [r for r in rows if r.ivd == ivd]
        y = [r.pfirrmann for r in sel]
        lines.append(
            f"| {LEVEL_NAME[ivd]} ({ivd}) | {len(sel)} | {_rho([r.dsi_default for r in sel], y)} | "
            f"{_rho([r.dsi_original for r in sel], y)} | {_rho([r.dsi_default_3 for r in sel], y)} |"
        )
    for name, sel in (("all lumbar (1-5)", lumbar), ("all graded discs", rows)):
        y = [r.pfirrmann for r in sel]
        lines.append(
            f"| **{name}** | {len(sel)} | {_rho([r.dsi_default for r in sel], y)} | "
            f"{_rho([r.dsi_original for r in sel], y)} | {_rho([r.dsi_default_3 for r in sel], y)} |"
        )
    lines += ["", "Mean ΔSI (default) per Pfirrmann grade, lumbar discs:", "", "| Pfirrmann | n | mean ΔSI | SD |", "|---|---|---|---|"]
    for g in range(1, 6):
        v = [r.dsi_default for r in lumbar if r.pfirrmann == g and np.isfinite(r.dsi_default)]
        if v:
            lines.append(f"| {g} | {len(v)} | {np.mean(v):.1f} | {np.std(v):.1f} |")
    lines += [
        "",
        "## Confusion matrix: our grade group vs Pfirrmann grade (lumbar discs)",
        "",
        "Our groups are the paper's *modified* Pfirrmann grade groups 1, 2, 3, 4, 5-8 from ΔSI thresholds",
        "106.51 / 84.31 / 59.06 / 33.15; they are not Pfirrmann grades, so the diagonal is only a rough guide.",
        "",
        "### default",
        "",
        _confusion(lumbar, "dsi_default"),
        "### bianque2022",
        "",
        _confusion(lumbar, "dsi_original"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "spider")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "spider_delta_si.md")
    args = ap.parse_args(argv)
    rows, stats = collect(args.data)
    text = report(rows, stats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n" + interpretation(rows, stats))
    print(text)
    return 0


def interpretation(rows: list[DiscRow], stats: dict[str, int]) -> str:
    lumbar = [r for r in rows if r.ivd <= 5]
    y = [r.pfirrmann for r in lumbar]
    r_def = spearmanr([r.dsi_default for r in lumbar], y)[0]
    fin = [(r.dsi_original, r.pfirrmann) for r in lumbar if np.isfinite(r.dsi_original)]
    r_orig = spearmanr([a for a, _ in fin], [b for _, b in fin])[0]
    g5 = sum(grade_group(r.dsi_default)[0] == 5 for r in lumbar)
    better = 0
    for ivd in range(1, 6):
        sel = [r for r in lumbar if r.ivd == ivd and np.isfinite(r.dsi_original)]
        yy = [r.pfirrmann for r in sel]
        better += spearmanr([r.dsi_default for r in sel], yy)[0] < spearmanr([r.dsi_original for r in sel], yy)[0]

    def strength(r: float) -> str:
        return "strong" if abs(r) > 0.6 else "moderate" if abs(r) > 0.4 else "weak"

    return "\n".join(
        [
            "## Interpretation (honest limits)",
            "",
            f"* ΔSI falls with the Pfirrmann grade on this data: rho = {r_def:+.2f} (default, {strength(r_def)}) and",
            f"  {r_orig:+.2f} (bianque2022, {strength(r_orig)}) over the lumbar discs, on the paper's own scale",
            "  (|r| 0.4-0.6 moderate, > 0.6 strong), and clearly weaker than the paper's -0.966. The `default` peaks",
            f"  correlate more strongly than the original heuristic at {better} of 5 levels.",
            "* The absolute scale does not transfer: "
            f"{g5} of {len(lumbar)} lumbar discs land in group 5 (5-8), including Pfirrmann 2-3 discs.",
            "  The thresholds of Table 7 were calibrated on 2-D T2 TSE exports of the authors' scanners; these are",
            "  3-D T2-SPACE slices whose discs are dark relative to CSF (disc medians about 10-45 of 255).",
            "  Grade groups on such data should not be read as modified Pfirrmann grades without recalibration.",
            "* The PNGs limit what can be shown: every slice was min-max rescaled to 8 bits on its own, resized to",
            "  512x640 (interpolation blurs the nucleus/annulus boundary that ΔSI measures) and rotated/flipped;",
            f"  in {stats['saturated_slices']} of {stats['slices']} slices the CSF reference sits at 255 (clipped), so those ΔSI",
            "  are inflated. Dark discs live in the bottom 10-20 % of the scale, where one grey level is a large",
            "  fraction of the peak difference.",
            "* SPIDER's canal label is not CSF: the bright Otsu class of the canal stands in for it (with the whole",
            "  canal the correlation is weaker, about -0.5, because the canal's dominant level is dark tissue).",
            "* 30 patients, one grading per disc (SPIDER's radiologist consensus), no separate test of inter-reader",
            "  variability; levels are assigned bottom-up from the mask components (IVD label 1 = lowest disc).",
            "",
        ]
    )

if __name__ == "__main__":
    raise SystemExit(main())
