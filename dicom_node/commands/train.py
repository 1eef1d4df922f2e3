"""``bianque train``: train the full or light BianqueNet variant from a recipe or command-line settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="recipe TOML (see inference/training/recipes/light.toml)")
    parser.add_argument("--variant", choices=("light", "bianquenet"), help="network variant (default: recipe or light)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, weights, eval.json)")
    parser.add_argument("--data-root", type=Path, help="folder holding the data sources (default $BIANQUE_DATA or <repo>/../shared/data)")
    parser.add_argument("--steps", type=int, help="optimisation steps (overrides the recipe)")
    parser.add_argument("--epochs", type=int, help="epochs of --steps-per-epoch steps (alternative to --steps)")
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--input-size", type=int, help="square network input (multiple of 64)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--val-every", type=int, help="validate and checkpoint every N steps")
    parser.add_argument("--max-minutes", type=float, help="stop after this much wall time and write the weights")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    parser.add_argument("--init", type=Path, help="start from this weights file of the same variant (fine-tuning)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from inference.training.recipe import TrainConfig, config_from_dict, load_recipe, with_overrides
    from inference.training.trainer import train

    recipe_text = ""
    try:
        if args.config:
            cfg, recipe_text = load_recipe(args.config)
        else:
            cfg = config_from_dict({})
        steps = args.steps if args.steps is not None else (args.epochs * args.steps_per_epoch if args.epochs else None)
        cfg = with_overrides(
            cfg, variant=args.variant, steps=steps, batch_size=args.batch_size, input_size=args.input_size, lr=args.lr,
            seed=args.seed, val_every=args.val_every, max_minutes=args.max_minutes, threads=args.threads,
            data_root=str(args.data_root) if args.data_root else None,
        )
        if cfg.input_size % 64:
            raise ValueError("--input-size must be a multiple of 64")
        result = train(cfg, args.out, device=args.device, resume=not args.no_resume, recipe_text=recipe_text,
                       log=lambda m: print(m, file=sys.stderr, flush=True), progress=not args.quiet,
                       init_weights=args.init)
    except (ValueError, OSError) as exc:
        print(f"bianque train: {exc}", file=sys.stderr)
        return 2
    print(f"weights: {result.weights_path}")
    print(f"steps: {result.steps_done}  wall: {result.wall_s / 60:.1f} min  best validation Dice: {result.best_score:.4f}")
    for r in result.reports:
        print()
        print(r.markdown())
    return 0
