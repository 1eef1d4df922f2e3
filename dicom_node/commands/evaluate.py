"""``bianque evaluate WEIGHTS DATASET``: per-class Dice and IoU on a labelled dataset (Markdown + JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("weights", help="weights file (ours or the original checkpoint), or 'default'")
    parser.add_argument("dataset", nargs="+", help="phantom | spider | vb | ivd | vesal | a LabelMe or images/+labels/ folder")
    parser.add_argument("--data-root", type=Path, help="default $BIANQUE_DATA or <repo>/../shared/data")
    parser.add_argument("--split", default="val", choices=("val", "train", "all"), help="subjects to use (default: held-out)")
    parser.add_argument("--phantoms", type=int, default=16, help="number of held-out phantoms for 'phantom'")
    parser.add_argument("--input-size", type=int, help="network input size (default: the weights file's)")
    parser.add_argument(
        "--tta", default="off",
        help="test-time augmentation: off (default), scale, gamma, scale-gamma, or comma-separated "
             "views scale[:gamma], e.g. 1,0.9,1.1:1.25 (probabilities averaged; no flips)",
    )
    parser.add_argument(
        "--postprocess", default="none", choices=("none", "fixed", "sacrum"),
        help="none (default): the network's argmax; fixed: the node's morphology with the network's levels; "
             "sacrum: morphology and levels counted from the sacrum (the node's default)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the JSON report here (default: stdout only)")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")


def run(args: argparse.Namespace) -> int:
    import torch

    from inference.training.datasets import DatasetError
    from inference.training.eval_sets import load_eval_set
    from inference.training.evaluation import evaluate_model, write_report
    from inference.training.recipe import DEFAULT_DATA_ROOT
    from inference.tta import parse_views
    from inference.weights_io import WeightsError, load_weights

    import os

    torch.set_num_threads(min(2, torch.get_num_threads()))
    root = args.data_root or Path(os.environ.get("BIANQUE_DATA", DEFAULT_DATA_ROOT))
    try:
        loaded = load_weights(args.weights, args.device)
        size = args.input_size or loaded.input_size
        views = parse_views(args.tta)
        reports = []
        for name in args.dataset:
            samples = load_eval_set(name, root, split=args.split, phantom_count=args.phantoms, phantom_size=size)
            if not samples:
                raise DatasetError(f"dataset {name!r} has no labelled slices in split {args.split!r}")
            reports.append(evaluate_model(loaded.model, samples, size, name, args.device, views=views,
                                          postprocessing=args.postprocess))
    except (WeightsError, DatasetError, ValueError, OSError) as exc:
        print(f"bianque evaluate: {exc}", file=sys.stderr)
        return 2
    for r in reports:
        print(r.markdown())
        print()
    if args.json:
        write_report(reports, args.json, args.markdown)
        print(f"JSON written to {args.json}")
    elif args.markdown:
        args.markdown.write_text("\n\n".join(r.markdown() for r in reports) + "\n")
    return 0
