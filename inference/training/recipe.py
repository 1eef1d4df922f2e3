"""Training recipe (TOML) -> frozen config, and the source list it names.

Example (``inference/training/recipes/light.toml``)::

    [model]
    variant = "light"
    input_size = 256

    [train]
    steps = 3000          # or epochs x steps_per_epoch
    batch_size = 8
    lr = 0.002
    seed = 0

    [[sources]]
    kind = "spider"        # phantom | spider | vb | ivd | vesal | labelme | labelmap | mat | cache
    path = "spider"        # relative to the data root (--data-root, $BIANQUE_DATA, <repo>/../shared/data)
    weight = 0.35          # share of each batch drawn from this source
    slices = 5             # central slices per subject
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inference.training.datasets import (
    DatasetError,
    Sample,
    load_ivd,
    load_labelme,
    load_labelmap,
    load_mat_generic,
    load_phantoms,
    load_spider,
    load_vb,
    load_vesal,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
KINDS = ("phantom", "spider", "vb", "ivd", "vesal", "labelme", "labelmap", "mat", "cache")


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    weight: float = 1.0
    path: str = ""
    slices: int = 3
    count: int = 200  # phantom: training phantoms
    val_count: int = 16  # phantom: validation phantoms (seeds from PHANTOM_VAL_SEED_BASE)
    mapping: tuple[tuple[int, int], ...] = ()  # mat: (value, class) pairs
    labelled: tuple[int, ...] | None = None  # labelmap: classes labelled (default all)


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "light"
    input_size: int = 256
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.03
    dice_weight: float = 1.0
    boundary_weight: float = 0.0  # extra cross-entropy weight of pixels at annotated outlines (loss.py)
    boundary_radius: int = 1
    seed: int = 0
    val_every: int = 200
    max_minutes: float | None = None  # stop (and finish normally) after this wall time
    bf16_cpu: bool = True
    channels_last: bool = True
    threads: int | None = None
    workers: int = 0  # threads for augmentation (OpenCV releases the GIL); 0 = main thread
    tta_scales: tuple[float, ...] = (1.0,)
    sources: tuple[SourceSpec, ...] = field(default_factory=tuple)
    data_root: str | None = None

    def resolved_data_root(self) -> Path:
        if self.data_root:
            return Path(self.data_root)
        env = os.environ.get("BIANQUE_DATA")
        return Path(env) if env else DEFAULT_DATA_ROOT


DEFAULT_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(kind="phantom", weight=0.3, count=240, val_count=16),
    SourceSpec(kind="spider", path="spider", weight=0.4, slices=5),
    SourceSpec(kind="vb", path="fastcleverseg_lumbar/vb2_t2tse", weight=0.15, slices=3),
    SourceSpec(kind="ivd", path="fastcleverseg_lumbar/ivd_t2", weight=0.1, slices=3),
    SourceSpec(kind="vesal", path="vesal_sag_t2", weight=0.05),
)


def load_recipe(path: str | Path) -> tuple[TrainConfig, str]:
    """Parse a recipe file; returns the config and the file's text (recorded in the model card)."""
    p = Path(path)
    text = p.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"recipe {p} is not valid TOML: {exc}") from exc
    return config_from_dict(data), text


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    model = data.get("model", {})
    train = dict(data.get("train", {}))
    known = {f for f in TrainConfig.__dataclass_fields__}
    kw: dict[str, Any] = {}
    if "variant" in model:
        kw["variant"] = model["variant"]
    if "input_size" in model:
        kw["input_size"] = int(model["input_size"])
    if "epochs" in train:
        train["steps"] = int(train.pop("epochs")) * int(train.pop("steps_per_epoch", 100))
    for k, v in train.items():
        if k not in known or k in ("sources",):
            raise ValueError(f"unknown [train] setting {k!r}")
        kw[k] = tuple(v) if isinstance(v, list) else v
    srcs = []
    for s in data.get("sources", []):
        s = dict(s)
        if s.get("kind") not in KINDS:
            raise ValueError(f"source kind must be one of {KINDS}, not {s.get('kind')!r}")
        if "mapping" in s:
            s["mapping"] = tuple((int(a), int(b)) for a, b in dict(s["mapping"]).items())
        if "labelled" in s:
            s["labelled"] = tuple(int(c) for c in s["labelled"])
        srcs.append(SourceSpec(**s))
    kw["sources"] = tuple(srcs) if srcs else DEFAULT_SOURCES
    if "data_root" in data:
        kw["data_root"] = str(data["data_root"])
    cfg = TrainConfig(**kw)
    if cfg.input_size % 64:
        raise ValueError("input_size must be a multiple of 64")
    return cfg


def load_source(spec: SourceSpec, root: Path, input_size: int) -> tuple[list[Sample], list[Sample]]:
    """(train-or-all samples, extra validation samples). Phantom validation samples come separately."""
    p = root / spec.path if spec.path else root
    if spec.kind != "phantom" and not p.exists():
        raise DatasetError(f"data folder for source {spec.kind!r} not found: {p}")
    if spec.kind == "phantom":
        return load_phantoms(spec.count, size=input_size), load_phantoms(spec.val_count, size=input_size, validation=True)
    if spec.kind == "spider":
        return load_spider(p, slices_per_subject=spec.slices), []
    if spec.kind == "vb":
        return load_vb(p, slices_per_subject=spec.slices), []
    if spec.kind == "ivd":
        return load_ivd(p, slices_per_subject=spec.slices), []
    if spec.kind == "vesal":
        return load_vesal(p), []
    if spec.kind == "labelme":
        return load_labelme(p), []
    if spec.kind == "labelmap":
        return load_labelmap(p, labelled=spec.labelled), []
    if spec.kind == "cache":
        from inference.training.cache import load_cache

        return load_cache(p), []
    if spec.kind == "mat":
        if not spec.mapping:
            raise DatasetError("a 'mat' source needs a mapping {value = class index}")
        return load_mat_generic(p, dict(spec.mapping), slices_per_subject=spec.slices), []
    raise DatasetError(f"unknown source kind {spec.kind!r}")


def with_overrides(cfg: TrainConfig, **kw: Any) -> TrainConfig:
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
