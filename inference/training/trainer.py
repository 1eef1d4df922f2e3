"""The training loop: mixed partial-label sources, checkpoints + resume, validation Dice, weights file.

Outputs under ``out_dir``: ``checkpoint.pt`` (resume), ``best.pt`` (fp32 weights, best validation),
``<variant>.pt`` (final fp16 weights file with model card, e.g. ``bianque-light.pt``),
``train_log.jsonl`` (one JSON line per validation), ``eval.json`` / ``eval.md`` (final evaluation
of the best model on the held-out subjects, on the original pixel grids).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from inference.training.datasets import Sample, split_by_subject
from inference.training.evaluation import EvalReport, evaluate_model, write_report
from inference.training.labels import NUM_CLASSES, group_weight
from inference.training.loss import partial_label_loss
from inference.training.recipe import SourceSpec, TrainConfig, load_source
from inference.training.transforms import AugmentConfig, augment, fit_to_canvas, normalise_1ch


@dataclass(frozen=True)
class _Prepared:
    image: np.ndarray  # canvas uint8
    codes: np.ndarray  # canvas uint8
    table_id: int
    groups: np.ndarray  # (G, 14) float32
    gweights: np.ndarray  # (G,)


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    weights_path: Path
    steps_done: int
    wall_s: float
    best_score: float
    final_loss: float
    reports: tuple[EvalReport, ...]


def _prepare(samples: Sequence[Sample], size: int, tables: list[np.ndarray]) -> list[_Prepared]:
    out = []
    for s in samples:
        tid = next((i for i, t in enumerate(tables) if t is s.table), None)
        if tid is None:
            tables.append(s.table)
            tid = len(tables) - 1
        img, codes, _ = fit_to_canvas(s.image, s.codes, size, s.spacing_mm)
        g = np.zeros((NUM_CLASSES, NUM_CLASSES), np.float32)
        w = np.zeros(NUM_CLASSES, np.float32)
        for i, grp in enumerate(s.groups[:NUM_CLASSES]):
            g[i, list(grp)] = 1.0
            w[i] = group_weight(grp)
        out.append(_Prepared(img, codes, tid, g, w))  # type: ignore[arg-type]
    return out


def _augment_one(args: tuple[_Prepared, int, AugmentConfig]) -> tuple[np.ndarray, np.ndarray]:
    p, seed, aug = args
    img, cod = augment(p.image, p.codes, np.random.default_rng(int(seed)), aug)
    return normalise_1ch(img), cod


def pick_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _key(spec: SourceSpec) -> str:
    return f"{spec.kind}:{spec.path}"


def load_all_sources(cfg: TrainConfig, log: Callable[[str], None]) -> tuple[dict[str, list[Sample]], list[Sample]]:
    """Train samples per source, and the validation samples (held-out subjects' mid slices + phantoms)."""
    root = cfg.resolved_data_root()
    train: dict[str, list[Sample]] = {}
    val: list[Sample] = []
    for spec in cfg.sources:
        t0 = time.perf_counter()
        samples, extra_val = load_source(spec, root, cfg.input_size)
        tr, va = split_by_subject(samples)
        train.setdefault(_key(spec), []).extend(tr)
        val.extend([s for s in va if s.mid] + extra_val)
        log(f"source {spec.kind}: {len(tr)} train slices, {len([s for s in va if s.mid]) + len(extra_val)} validation slices "
            f"({time.perf_counter() - t0:.1f} s)")
    return train, val


def lr_factor(progress: float, warmup_frac: float) -> float:
    """Linear warm-up, then cosine decay to 2 % of the peak; ``progress`` in [0, 1]."""
    if progress < warmup_frac:
        return max(progress / warmup_frac, 0.01)
    t = (progress - warmup_frac) / max(1e-9, 1 - warmup_frac)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _set_lr(opt: torch.optim.Optimizer, cfg: TrainConfig, step: int, minutes: float) -> None:
    """Progress is the larger of step/steps and elapsed/max_minutes, so a time-limited run still anneals."""
    progress = step / cfg.steps
    if cfg.max_minutes:
        progress = max(progress, minutes / cfg.max_minutes)
    for g in opt.param_groups:
        g["lr"] = cfg.lr * lr_factor(progress, cfg.warmup_frac)


def _val_score(reports: Sequence[EvalReport]) -> float:
    vals = [r.summary.get("all labelled classes") for r in reports]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else 0.0


def validate(model: torch.nn.Module, val: Sequence[Sample], cfg: TrainConfig, device: torch.device) -> tuple[EvalReport, ...]:
    by_src: dict[str, list[Sample]] = {}
    for s in val:
        by_src.setdefault(s.source, []).append(s)
    reps = tuple(evaluate_model(model, ss, cfg.input_size, src, device, cfg.tta_scales) for src, ss in sorted(by_src.items()))
    model.train()
    return reps


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    device: str | None = None,
    resume: bool = True,
    recipe_text: str = "",
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    init_weights: str | Path | None = None,
) -> TrainResult:
    """Train ``cfg.variant``; resumable from ``out_dir/checkpoint.pt``.

    ``init_weights`` (a weights file of the same variant) starts the network from those weights
    instead of a random initialisation (fine-tuning); a checkpoint in ``out_dir`` still wins.
    """
    from inference.model import build_model
    from inference.weights_io import save_weights

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a")

    def _log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        logf.write(line + "\n")
        logf.flush()
        if log is not None:
            log(line)

    dev = pick_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()
    train_sets, val = load_all_sources(cfg, _log)
    tables: list[np.ndarray] = []
    prepared = {k: _prepare(v, cfg.input_size, tables) for k, v in train_sets.items() if v}
    weights = {_key(spec): 0.0 for spec in cfg.sources}
    for spec in cfg.sources:
        weights[_key(spec)] += spec.weight
    kinds = [k for k in prepared if weights.get(k, 0) > 0]
    if not kinds:
        raise ValueError("no training samples: every source is empty or has weight 0")
    probs = np.array([weights[k] for k in kinds], np.float64)
    probs /= probs.sum()
    tables_t = torch.from_numpy(np.stack(tables)).to(dev)
    _log(f"prepared {sum(len(v) for v in prepared.values())} training slices at {cfg.input_size}px in "
         f"{time.perf_counter() - t_start:.1f} s; device {dev}")

    model = build_model(cfg.variant).to(dev)
    use_cl = cfg.channels_last
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, best_step, history_loss = 0, -1.0, 0, []
    ckpt_path = out / "checkpoint.pt"
    elapsed_before = 0.0
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, best = int(ck["step"]), float(ck["best"])
        best_step = int(ck.get("best_step", 0))
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        elapsed_before = float(ck.get("elapsed_s", 0.0))
        _log(f"resumed from {ckpt_path} at step {step} (best validation Dice {best:.4f})")
    elif init_weights is not None:
        from inference.weights_io import load_weights

        init = load_weights(init_weights, device="cpu", expected_variant=cfg.variant)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in init.model.state_dict().items()})
        _log(f"initialised from {init_weights} (sha256 {init.sha256[:12]})")
    aug = AugmentConfig()
    autocast_dtype = torch.bfloat16
    use_autocast = (dev.type == "cpu" and cfg.bf16_cpu) or dev.type == "cuda"
    t_loop = time.perf_counter()
    _set_lr(opt, cfg, step, (elapsed_before + time.perf_counter() - t_start) / 60.0)
    model.train()
    reports: tuple[EvalReport, ...] = ()
    last_loss = float("nan")

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "step": step, "best": best, "best_step": best_step, "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "elapsed_s": elapsed_before + time.perf_counter() - t_loop, "config": asdict(cfg),
        }, tmp)
        tmp.replace(ckpt_path)

    bar = _Progress(cfg.steps, step, enabled=progress)
    executor = ThreadPoolExecutor(cfg.workers) if cfg.workers > 0 else None
    pool_map = executor.map if executor is not None else map
    while step < cfg.steps:
        if cfg.max_minutes is not None and (elapsed_before + time.perf_counter() - t_start) / 60.0 > cfg.max_minutes:
            _log(f"time budget of {cfg.max_minutes} min reached at step {step}")
            break
        ks = rng.choice(len(kinds), size=cfg.batch_size, p=probs)
        picks = [prepared[kinds[k]][int(rng.integers(len(prepared[kinds[k]])))] for k in ks]
        seeds = rng.integers(0, 2**63 - 1, size=len(picks))
        items = list(pool_map(_augment_one, zip(picks, seeds, [aug] * len(picks))))
        xs = [it[0] for it in items]
        cs = [it[1] for it in items]
        tids = [p.table_id for p in picks]
        gs = [p.groups for p in picks]
        ws = [p.gweights for p in picks]
        x = torch.from_numpy(np.stack(xs))[:, None].expand(-1, 3, -1, -1).contiguous().to(dev)
        if use_cl:
            x = x.contiguous(memory_format=torch.channels_last)
        codes = torch.from_numpy(np.stack(cs)).long().to(dev)
        tabs = tables_t[torch.tensor(tids, device=dev)]
        groups = torch.from_numpy(np.stack(gs)).to(dev)
        gw = torch.from_numpy(np.stack(ws)).to(dev)
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=use_autocast):
            logits = model(x)
        lv = partial_label_loss(logits, codes, tabs, groups, gw, cfg.dice_weight,
                                boundary_weight=cfg.boundary_weight, boundary_radius=cfg.boundary_radius)
        opt.zero_grad(set_to_none=True)
        lv.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        _set_lr(opt, cfg, step, (elapsed_before + time.perf_counter() - t_start) / 60.0)
        last_loss = float(lv.total.detach())
        history_loss.append(last_loss)
        bar.update(step, last_loss, best)
        if step % cfg.val_every == 0 or step == cfg.steps:
            reports = validate(model, val, cfg, dev)
            score = _val_score(reports)
            rec = {"step": step, "loss": float(np.mean(history_loss[-cfg.val_every:])), "val_dice": score,
                   "lr": opt.param_groups[0]["lr"], "elapsed_s": elapsed_before + time.perf_counter() - t_loop,
                   "per_source": {r.dataset: r.summary for r in reports}}
            with open(out / "train_log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            _log(f"step {step}/{cfg.steps} loss {rec['loss']:.4f} val Dice {score:.4f} "
                 + " ".join(f"{r.dataset}:{r.summary.get('all labelled classes', 0):.3f}" for r in reports))
            if score > best:
                best, best_step = score, step
                save_weights(out / "best.pt", model, cfg.variant, cfg.input_size, model_card={"step": step, "val_dice": score}, half=False)
            save_checkpoint()
    bar.close()
    if executor is not None:
        executor.shutdown()
    if step % cfg.val_every != 0:
        save_checkpoint()
    wall = elapsed_before + time.perf_counter() - t_loop
    # final: best model (or current if no validation happened) -> fp16 weights file + evaluation
    from inference.weights_io import load_weights

    if (out / "best.pt").is_file():
        model = load_weights(out / "best.pt", dev).model
    model.eval()
    reports = validate(model, val, cfg, dev)
    write_report(reports, out / "eval.json", out / "eval.md")
    card = {
        "variant": cfg.variant, "input_size": cfg.input_size, "steps": step, "train_wall_s": round(wall, 1),
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"),
        "torch": torch.__version__, "python": sys.version.split()[0], "config": asdict(cfg), "recipe": recipe_text,
        "validation": [asdict(r) for r in reports], "best_val_dice": best,
        "weights_from_step": best_step if (out / "best.pt").is_file() else step,
    }
    name = "bianque-light.pt" if cfg.variant == "light" else f"bianque-{cfg.variant}.pt"
    wpath = out / name
    save_weights(wpath, model, cfg.variant, cfg.input_size, model_card=json.loads(json.dumps(card, default=str)), half=True)
    _log(f"wrote {wpath} after {step} steps ({wall / 60:.1f} min); best validation Dice {best:.4f}")
    logf.close()
    return TrainResult(out, wpath, step, wall, best, last_loss, reports)


class _Progress:
    """A rich progress bar on a terminal; periodic plain lines otherwise."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self._last_print = time.perf_counter()
        self._rich = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._rich = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self._rich.start()
            self._task = self._rich.add_task("", total=total, completed=start)

    def update(self, step: int, loss: float, best: float) -> None:
        if not self.enabled:
            return
        desc = f"loss {loss:.4f} val Dice {best:.4f}" if best >= 0 else f"loss {loss:.4f}"
        if self._rich is not None:
            self._rich.update(self._task, completed=step, description=desc)
        elif time.perf_counter() - self._last_print > 30 or step == self.total:
            print(f"train {step}/{self.total} {desc}", file=sys.stderr, flush=True)
            self._last_print = time.perf_counter()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
