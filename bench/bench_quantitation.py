"""Quantitation benchmark: time per slice (five discs, one core) for both methods, plus accuracy on
synthetic spines and ΔSI stability on real discs.

Usage:  .venv/bin/python bench/bench_quantitation.py [--repeats 40] [--out bench/results/quantitation.md]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import io, ndimage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quantitation import quantify_slice  # noqa: E402
from quantitation import phantom as ph  # noqa: E402
from quantitation import signal_intensity as sig  # noqa: E402
from quantitation.masks import crop  # noqa: E402
from quantitation.outline_registration import REGISTRATION_REACH_PX  # noqa: E402

DATA = REPO.parent / "shared" / "data"
NAMES = ("L1", "L2", "L3", "L4", "L5", "S1")


def _one_core() -> str:
    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return "pinned to one core (sched_setaffinity), OpenCV/BLAS threads = 1"
    except (AttributeError, OSError):
        return "OpenCV/BLAS threads = 1 (no CPU pinning available)"


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} logical CPUs visible; Python {platform.python_version()}, "
        f"NumPy {np.__version__}, SciPy {scipy.__version__}, OpenCV {cv2.__version__}; {platform.platform()}"
    )


def timing(repeats: int) -> list[tuple[str, float, float, float]]:
    spine = ph.draw_spine((512, 512), (0.55, 0.55))
    rows = []
    for method in ("default", "bianque2022"):
        for sex in (None, "M"):
            for _ in range(3):  # warm-up
                quantify_slice(spine.labels, spine.image, spine.spacing, method=method, sex=sex)
            t = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                q = quantify_slice(spine.labels, spine.image, spine.spacing, method=method, sex=sex)
                t.append((time.perf_counter() - t0) * 1000)
            assert sum(d.dh_mm is not None for d in q.discs) == 5
            label = f"{method}, sex {'known (deviations)' if sex else 'unknown'}"
            rows.append((label, statistics.median(t), float(np.percentile(t, 90)), min(t)))
    return rows


def accuracy(n: int = 20) -> dict[str, float]:
    rng = np.random.default_rng(123)
    err = {"dh_mm": [], "hdr_rel": [], "dhi_rel": [], "corner_px": [], "dh_bianque_ratio": []}
    for _ in range(n):
        spacing = (float(rng.uniform(0.25, 0.4)), float(rng.uniform(0.25, 0.45)))
        t0 = float(rng.uniform(-30, 0))
        tilts = np.minimum(np.cumsum([t0, *rng.uniform(0, 10, 5)]), 40)
        bodies = [ph.BodySpec(float(rng.uniform(32, 42)), float(rng.uniform(32, 42)), float(rng.uniform(22, 30)), float(t)) for t in tilts]
        heights = tuple(float(x) for x in rng.uniform(6, 14, 5))
        s = ph.draw_spine((int(300 / spacing[0]), int(170 / spacing[1])), spacing, bodies, heights, rng=rng)
        q = quantify_slice(s.labels, s.image, s.spacing)
        qb = quantify_slice(s.labels, s.image, s.spacing, method="bianque2022")
        for i, d in enumerate(q.discs):
            e = ph.expected_disc(s.bodies[NAMES[i]], s.bodies[NAMES[i + 1]], s.discs[d.level])
            hu, hl = ph.expected_hv(s.bodies[NAMES[i]]), ph.expected_hv(s.bodies[NAMES[i + 1]])
            dhi = e["dh"] / hu if i == 4 else 2 * e["dh"] / (hu + hl)
            err["dh_mm"].append(abs(d.dh_mm - e["dh"]))
            err["hdr_rel"].append(abs(d.hdr / (e["dh"] / e["wd_small"]) - 1))
            err["dhi_rel"].append(abs(d.dhi / dhi - 1))
            if qb.discs[i].dh_mm is not None:
                err["dh_bianque_ratio"].append(qb.discs[i].dh_mm / e["dh"])
        for v in q.vertebrae:
            true = s.bodies[v.level] / np.asarray(spacing)
            err["corner_px"].append(float(np.hypot(*(np.asarray(v.corners) - true).T).max()))
    return {k: (float(np.max(v)), float(np.median(v))) for k, v in err.items()}  # type: ignore[misc]


def _components(mask: np.ndarray, min_px: int) -> list[np.ndarray]:
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [lab == i for i in range(1, n) if int((lab == i).sum()) >= min_px]


def _real_discs() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"vesal_sag_t2": [], "spider (central slices)": [], "fastcleverseg ivd_t2": []}
    root = DATA / "vesal_sag_t2"
    for f in sorted((root / "masks").glob("*.npy")):
        img = np.array(Image.open(root / "images" / f"{f.stem}.png").convert("L"))
        out["vesal_sag_t2"] += [(img, m) for m in _components(np.load(f) == 1, 50)]
    root = DATA / "spider" / "t2space_png"
    by: dict[str, list[dict[str, str]]] = {}
    with (root / "manifest.csv").open() as fh:
        for r in csv.DictReader(fh):
            by.setdefault(r["subject"], []).append(r)
    for rs in by.values():
        r = sorted(rs, key=lambda r: int(r["slice"]))[len(rs) // 2]
        img = np.array(Image.open(root / r["image_file"]).convert("L"))
        mask = np.array(Image.open(root / r["mask_file"]).convert("L"))
        out["spider (central slices)"] += [(img, m) for m in _components(mask == 29, 200)]
    for f in sorted((DATA / "fastcleverseg_lumbar" / "ivd_t2").glob("*.mat")):
        mat = io.loadmat(f)
        k = int(np.argmax((mat["GT"] > 0).sum(axis=(0, 1))))
        sl = mat["I"][:, :, k].astype(np.float64)
        img = np.clip(np.rint(sl / sl.max() * 255), 0, 255).astype(np.uint8)
        out["fastcleverseg ivd_t2"] += [(img, mat["GT"][:, :, k] == lv) for lv in range(1, 6) if int((mat["GT"][:, :, k] == lv).sum()) >= 30]
    return out


def _crop(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The disc with room for the outline registration around its mask grown by one pixel."""
    c = crop(m, REGISTRATION_REACH_PX + 3)
    assert c is not None
    return img[c.box], c.mask


def stability() -> list[tuple[str, str, int, float, float, float, float]]:
    rows = []
    fns = {
        "default": lambda img, m: sig.registered_disc_peaks(img, m).difference,
        "default read-out on the mask as drawn (no registration)": lambda img, m: sig.disc_peaks(img[m], sig.disc_weights(m)).difference,
        "bianque2022": lambda img, m: sig.original_peaks(img[m]).difference,
    }
    for source, cases in _real_discs().items():
        for name, fn in fns.items():
            ch = []
            for full_img, full_m in cases:
                img, m = _crop(full_img, full_m)
                er, di = ndimage.binary_erosion(m), ndimage.binary_dilation(m)
                if er.sum() < 10:
                    continue
                base = fn(img, m)
                ch.append(max(abs(fn(img, er) - base), abs(fn(img, di) - base)))
            a = np.array(ch)
            rows.append((source, name, a.size, float(np.mean(a <= 3)), float(np.median(a)), float(np.percentile(a, 90)), float(a.max())))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quantitation.md")
    args = ap.parse_args(argv)
    pin = _one_core()
    load = os.getloadavg()[0]
    t = timing(args.repeats)
    acc = accuracy()
    stab = stability() if DATA.exists() else []
    lines = [
        "# Quantitation benchmark",
        "",
        "Generated by `bench/bench_quantitation.py`.",
        "",
        f"Machine: {_machine()}. {pin}.",
        f"Load average (1 min) when the timing started: {load:.2f}; other jobs on the machine make the times",
        "upper bounds, and the minimum column is the least disturbed run.",
        "",
        "## Time per slice (512 x 512 synthetic slice, five discs, six bodies, CSF and fat)",
        "",
        f"Target: <= 50 ms per slice on one core (the paper reports about 0.5 s). {args.repeats} runs after 3 warm-ups.",
        "",
        "| method | median ms | p90 ms | min ms |",
        "|---|---|---|---|",
        *[f"| {name} | {med:.1f} | {p90:.1f} | {mn:.1f} |" for name, med, p90, mn in t],
        "",
        "With a known sex the `default` method also measures the discs with the bianque2022 definitions, because",
        "the DH/DHI/HDR references were measured that way (the deviations compare like with like).",
        "",
        "## Accuracy on synthetic spines with known geometry (method default)",
        "",
        "20 random lordotic spines (tilts -30..+40 degrees, trapezoid bodies, disc heights 6-14 mm, anisotropic",
        "spacing 0.25-0.45 mm), 100 discs and 120 bodies. Issue targets: DH 0.2 mm, HDR and DHI 2 %, corners 1 px.",
        "",
        "| quantity | max error | median error |",
        "|---|---|---|",
        f"| DH (mm) | {acc['dh_mm'][0]:.3f} | {acc['dh_mm'][1]:.3f} |",
        f"| HDR (relative) | {acc['hdr_rel'][0]:.2%} | {acc['hdr_rel'][1]:.2%} |",
        f"| DHI (relative) | {acc['dhi_rel'][0]:.2%} | {acc['dhi_rel'][1]:.2%} |",
        f"| corners (px) | {acc['corner_px'][0]:.2f} | {acc['corner_px'][1]:.2f} |",
        "",
        f"For comparison, bianque2022 DH / true DH on the same discs: median {acc['dh_bianque_ratio'][1]:.2f}, "
        f"max {acc['dh_bianque_ratio'][0]:.2f} (the built-in ~0.8 factor and inset corners, spec 5.5 / F10-F11).",
        "",
        "A binary mask carries a nearly horizontal endplate only to within half a pixel, so the 0.2 mm DH bound",
        "needs about 0.4 mm rows or finer; on coarser grids the rasterisation itself exceeds it.",
        "",
    ]
    if stab:
        lines += [
            "## ΔSI peak difference under a one-pixel erosion / dilation of real disc masks",
            "",
            "Largest change (grey levels) of the raw peak difference when the real mask is eroded or dilated by one",
            "pixel (3x3 cross). Issue target: at most 3 grey levels.",
            "",
            "| data | method | discs | within 3 levels | median | p90 | max |",
            "|---|---|---|---|---|---|---|",
            *[f"| {s} | {m} | {n} | {round(sh * n)} ({sh:.1%}) | {med:.1f} | {p90:.1f} | {mx:.1f} |"
              for s, m, n, sh, med, p90, mx in stab],
            "",
            "The default method registers each disc's outline to the image before it reads the histogram",
            "(quantitation/outline_registration.py: each half of the outline moves by whole pixels, up to 4, to the",
            "ring that is dark and has brighter tissue outside it), so a mask one pixel smaller or larger reads the",
            "same pixels. The read-out (depth-weighted histogram without saturated 0/255 values, Gaussian smoothing",
            "sigma 5, soft peak pair whose ends are discounted where little of the disc lies near them, capped",
            "Newton step) on the masks as drawn moves 20 of the 356 discs by more than 3 levels. The one disc still",
            "above 3 levels with the registration (SPIDER patient 209's collapsed, steeply tilted L5/S1, named in",
            "tests/quantitation/test_real_data_stability.py) has two competing dark lines around it; the node flags",
            "it. Candidates evaluated and the independent checks (one-pixel translations, two-pixel changes, the",
            "network's grid, the network's masks against the annotators'): quantitation/README.md.",
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
