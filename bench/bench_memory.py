"""Memory benchmark: the node's peak RSS (VmHWM) with the full model loaded and one study processed.

Runs ``bench_latency.measure`` (``bianque serve`` + Orthanc, one phantom study through the full
BianqueNet, random weights unless ``--weights`` is given) and reports the node process's VmHWM.
Target on CPU: <= 2 GiB.

Usage: ``.venv/bin/python bench/bench_memory.py [--variant bianquenet] [--out bench/results/memory.md]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency import machine, measure, random_weights, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("light", "bianquenet"), default="bianquenet")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bianque-bench-memory-"))
    header = machine()
    try:
        weights = args.weights or random_weights(args.variant, root / f"random-{args.variant}.pt")
        origin = "given weights" if args.weights else "random weights (same size and compute as trained ones)"
        runs, peak = measure(args.variant, weights, args.studies, 2.0, 2, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    verdict = "met" if peak <= 2048 else "NOT met"
    text = "\n".join([
        f"## {args.variant} model ({origin})",
        "",
        f"Machine: {header}.",
        "",
        f"Peak RSS (VmHWM) of the `bianque serve` process after loading the model and processing {len(runs)} "
        f"phantom study(ies) (sagittal T2 512x512, one slice through the network, SEG/SR/report image built "
        f"and sent to Orthanc): **{peak:.0f} MiB**; target <= 2048 MiB: {verdict}.",
        "",
    ])
    report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
