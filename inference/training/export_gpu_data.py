"""Copy the training subsets of ../shared/data into portable sample caches (for bench/gpu_train.sh).

    python -m inference.training.export_gpu_data --data-root ../shared/data --out .gpu/data

Writes ``OUT/spider``, ``OUT/vb``, ``OUT/ivd``, ``OUT/vesal`` (see inference.training.cache) with the
same slices the default recipe trains on (train and held-out subjects; the split is applied when
training). Refuses to exceed ``--max-mb`` (default 50): SPIDER is reduced to fewer central slices first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from inference.training.cache import export_cache
from inference.training.datasets import load_ivd, load_spider, load_vb, load_vesal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="export_gpu_data")
    ap.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path(".gpu/data"))
    ap.add_argument("--max-mb", type=float, default=50.0)
    args = ap.parse_args(argv)
    root = args.data_root
    if not root.is_dir():
        print(f"data root not found: {root}", file=sys.stderr)
        return 2
    total = 0
    for spider_slices in (5, 3, 1):
        if args.out.exists():
            shutil.rmtree(args.out)
        sizes = {
            "spider": export_cache(load_spider(root / "spider", slices_per_subject=spider_slices), args.out / "spider"),
            "vb": export_cache(load_vb(root / "fastcleverseg_lumbar" / "vb2_t2tse", slices_per_subject=3), args.out / "vb"),
            "ivd": export_cache(load_ivd(root / "fastcleverseg_lumbar" / "ivd_t2", slices_per_subject=3), args.out / "ivd"),
            "vesal": export_cache(load_vesal(root / "vesal_sag_t2"), args.out / "vesal"),
        }
        total = sum(sizes.values())
        if total <= args.max_mb * 1e6:
            break
        print(f"{total / 1e6:.1f} MB with {spider_slices} SPIDER slices per subject is too much; reducing", file=sys.stderr)
    for k, v in sizes.items():
        print(f"{k}: {v / 1e6:.1f} MB")
    print(f"total {total / 1e6:.1f} MB in {args.out}")
    return 0 if total <= args.max_mb * 1e6 else 1


if __name__ == "__main__":
    sys.exit(main())
