"""Evaluate a weights file on the fixed model-card sets and write its evaluation JSON and MODEL_CARD.md.

    python -m inference.training.model_card WEIGHTS [--data-root DIR] [--json OUT.json] [--card OUT.md]

Card sets (all held out from training, fixed): ``phantom`` = validation phantoms val0..val7 (seeds
1000000..1000007, generated at the weights' input size), ``spider`` / ``vb`` / ``ivd`` = the
mid-sagittal slices of the validation subjects in ``VALIDATION_SUBJECTS``. tests/training checks that
the shipped weights still reach the numbers in the JSON (within 0.02). The per-class tables score the
network alone (argmax); a second table scores the same slices after each post-processing of the node
(``POSTPROCESSINGS``: none, fixed morphology, morphology + levels counted from the sacrum, the default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from inference.training.datasets import VALIDATION_SUBJECTS
from inference.training.eval_sets import load_eval_set
from inference.training.evaluation import POSTPROCESSINGS, EvalReport, evaluate_model
from inference.training.recipe import DEFAULT_DATA_ROOT

CARD_SETS: tuple[str, ...] = ("phantom", "spider", "vb", "ivd")
CARD_PHANTOMS = 8


def evaluate_card_sets(weights: str | Path, data_root: Path, sets: tuple[str, ...] = CARD_SETS,
                       postprocessing: str = "none") -> tuple[list[EvalReport], float]:
    from inference.weights_io import load_weights

    loaded = load_weights(weights, "cpu")
    size = loaded.input_size
    reports = []
    spent = 0.0
    n = 0
    for name in sets:
        samples = load_eval_set(name, data_root, split="val", phantom_count=CARD_PHANTOMS, phantom_size=size)
        t0 = time.perf_counter()
        reports.append(evaluate_model(loaded.model, samples, size, name, "cpu", postprocessing=postprocessing))
        spent += time.perf_counter() - t0
        n += len(samples)
    return reports, spent / max(n, 1)


def _table(reports: list[EvalReport]) -> str:
    lines = []
    for r in reports:
        lines.append(f"#### {r.dataset} ({r.n_samples} held-out mid-sagittal slices)\n")
        lines.append(r.markdown().split("\n", 2)[2])
        lines.append("")
    return "\n".join(lines)


def postprocessing_table(by_mode: dict[str, list[EvalReport]]) -> str:
    """Markdown: one row per post-processing, summary Dice per card set (phantoms: also the lowest class)."""
    sets = [r.dataset for r in next(iter(by_mode.values()))]
    cols = [(d, k) for d in sets for k in ("discs", "vertebral bodies", "CSF")
            if any(k in r.summary for r in by_mode[next(iter(by_mode))] if r.dataset == d)]
    head = "| post-processing | " + " | ".join(f"{d} {k}" for d, k in cols) + " | phantom lowest class |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for mode, reports in by_mode.items():
        by = {r.dataset: r for r in reports}
        low = min((c.dice for c in by["phantom"].classes), default=float("nan")) if "phantom" in by else float("nan")
        lines.append(f"| {mode} | " + " | ".join(f"{by[d].summary[k]:.3f}" for d, k in cols) + f" | {low:.3f} |")
    return "\n".join(lines)


def write_card(weights: Path, reports: list[EvalReport], sec_per_slice: float, out_md: Path, extra: str = "",
               by_mode: dict[str, list[EvalReport]] | None = None) -> None:
    from inference.weights_io import file_sha256, load_weights

    loaded = load_weights(weights, "cpu")
    card = loaded.model_card if isinstance(loaded.model_card, dict) else {}
    recipe = card.get("recipe", "")
    n_params = sum(p.numel() for p in loaded.model.parameters())
    summary = {r.dataset: r.summary for r in reports}
    text = f"""# Model card: `{weights.name}` (BianqueNet, {loaded.variant} variant)

- File: `{weights.name}`, {weights.stat().st_size / 1e6:.1f} MB, fp16 parameters (BatchNorm statistics fp32),
  sha256 `{file_sha256(weights)}`; format `bianque-weights/1` (inference/weights_io.py).
- Network: `build_model("{loaded.variant}")`, {n_params / 1e6:.2f} M parameters, input {loaded.input_size} x {loaded.input_size},
  14 output classes in BianqueNet order (background, CSF, L1, L1/L2, ..., L5/S1, S1, presacral fat).
- Preprocessing: identical to inference (aspect-preserving fit into the square input, CLAHE clip 2.0 / 8x8,
  (x/255 - 0.2703814) / 0.24898738).
- Produced by `bianque train` with the recipe below (no pretrained backbone; a recipe that names `--init`
  fine-tunes an earlier file of this lineage, see the notes): {card.get('steps', '?')} steps,
  {float(card.get('train_wall_s', 0)) / 60:.1f} min of training on {card.get('device', '?')}, torch {card.get('torch', '?')};
  weights from step {card.get('weights_from_step', card.get('steps', '?'))} (best validation Dice {_num(card.get('best_val_dice'))}).

## Data

Training mixes (share of each batch): synthetic phantoms (inference/synthetic, all 14 classes), SPIDER
T2-SPACE slices (CSF = spinal canal, vertebral bodies = vertebra anterior to the canal, levels bottom-up,
5 central slices per patient), fastcleverseg VB2 T2 TSE (L1-L5 bodies by centroid order) and IVD T2 (level-specific
discs), Vesal (disc/vertebra without levels: used only as "some disc" / "some bone" constraints). Partial
labels train only the classes they define (marginal cross-entropy: unlabelled pixels may be any class the
source does not label; weighted Dice over classes the source determines: 0.9 bodies, 0.8 discs, 1 others).
No real source labels the sacrum (S1) or presacral fat: those two classes are learnt from phantoms only; on
real images, unlabelled pixels may be S1 or presacral fat only from the top of the L5/S1 disc down (and, in
SPIDER, in front of the canal), and count as background above that (`CODE_CAUDAL`, inference/training/datasets.py).
Validation subjects (never trained on): {json.dumps({k: sorted(v) for k, v in VALIDATION_SUBJECTS.items() if k != 'phantom'})};
validation phantoms use seeds >= 1000000.

## Evaluation (held out; Dice and IoU on each image's original pixel grid; only classes the source labels)

CPU inference incl. preprocessing: {sec_per_slice:.2f} s per slice (this machine, 2 shared cores).

{_table(reports)}
Summary: {json.dumps(summary, indent=None)}

Targets of issue 6: real images disc >= 0.92, vertebral bodies >= 0.93, CSF >= 0.93; phantoms >= 0.97 per class.
{_postprocessing_section(by_mode)}{extra}
Caveats: SPIDER images were resized by their uploader (pixel spacing unknown); the SPIDER canal contains cord
and CSF, so "CSF" here means the thecal sac; only 5 SPIDER, 3 VB2 and 1 IVD subjects are held out, so the real-data
numbers carry large uncertainty. S1 and presacral fat are never evaluated on real images (no labels exist).

## Recipe

```toml
{recipe.strip()}
```
"""
    out_md.write_text(text)


def _num(value: object) -> str:
    return f"{float(value):.4f}" if isinstance(value, (int, float)) else "?"


def _postprocessing_section(by_mode: dict[str, list[EvalReport]] | None) -> str:
    if not by_mode:
        return ""
    return f"""
### After the node's post-processing (same slices; `bianque evaluate --postprocess MODE`)

`none` = the network's argmax (the tables above); `fixed` = morphology of inference/postprocess.py with the
network's levels; `sacrum` = morphology and vertebra/disc levels counted from the sacrum (the node's default,
`level_assignment="sacrum"`).

{postprocessing_table(by_mode)}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="model_card")
    ap.add_argument("weights", type=Path)
    ap.add_argument("--data-root", type=Path, default=Path(os.environ.get("BIANQUE_DATA", DEFAULT_DATA_ROOT)))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--card", type=Path)
    ap.add_argument("--extra", default="", help="extra Markdown for the card (e.g. notes on the run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    reports, sps = evaluate_card_sets(args.weights, args.data_root)
    by_mode = {"none": reports}
    for mode in POSTPROCESSINGS[1:]:
        by_mode[mode] = evaluate_card_sets(args.weights, args.data_root, postprocessing=mode)[0]
    payload = {"weights_sha256_note": "see MODEL_CARD.md", "card_phantoms": CARD_PHANTOMS,
               "reports": [asdict(r) for r in reports], "seconds_per_slice": sps,
               "postprocessed": {m: [asdict(r) for r in rs] for m, rs in by_mode.items() if m != "none"}}
    for r in reports:
        print(r.markdown() + "\n")
    print(postprocessing_table(by_mode))
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    if args.card:
        write_card(args.weights, reports, sps, args.card, args.extra, by_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
