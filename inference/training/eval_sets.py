"""Named evaluation sets for ``bianque evaluate`` (held-out subjects by default)."""

from __future__ import annotations

from pathlib import Path

from inference.training.datasets import (
    VALIDATION_SUBJECTS,
    DatasetError,
    Sample,
    load_ivd,
    load_labelme,
    load_labelmap,
    load_phantoms,
    load_spider,
    load_vb,
    load_vesal,
    split_by_subject,
)

NAMED_PATHS = {
    "spider": "spider",
    "vb": "fastcleverseg_lumbar/vb2_t2tse",
    "ivd": "fastcleverseg_lumbar/ivd_t2",
    "vesal": "vesal_sag_t2",
}


def load_eval_set(dataset: str, data_root: Path, *, split: str = "val", phantom_count: int = 16, phantom_size: int = 320) -> list[Sample]:
    """Mid-sagittal slices of ``dataset``: a named source (phantom, spider, vb, ivd, vesal) or a folder
    with LabelMe JSON files or ``images/`` + ``labels/`` label maps. ``split``: val | train | all."""
    if split not in ("val", "train", "all"):
        raise ValueError("split must be val, train or all")
    if dataset == "phantom":
        return load_phantoms(phantom_count, size=phantom_size, validation=(split != "train"))
    if dataset in NAMED_PATHS:
        p = data_root / NAMED_PATHS[dataset]
        if not p.exists():
            raise DatasetError(f"data folder for {dataset!r} not found: {p}")
        subj = sorted(VALIDATION_SUBJECTS[dataset]) if split == "val" else None
        loader = {"spider": lambda: load_spider(p, slices_per_subject=1, subjects=subj),
                  "vb": lambda: load_vb(p, slices_per_subject=1, subjects=subj),
                  "ivd": lambda: load_ivd(p, slices_per_subject=1, subjects=subj),
                  "vesal": lambda: load_vesal(p, subjects=subj)}[dataset]
        samples = [s for s in loader() if s.mid]
    else:
        p = Path(dataset)
        if not p.is_dir():
            raise DatasetError(f"unknown dataset {dataset!r}: use phantom, spider, vb, ivd, vesal or a folder")
        if (p / "images").is_dir() and (p / "labels").is_dir():
            samples = load_labelmap(p)
        elif any(p.rglob("*.json")):
            samples = load_labelme(p)
        else:
            raise DatasetError(f"{p}: expected LabelMe *.json files or images/ + labels/ folders")
        return samples
    if split == "all":
        return samples
    train, val = split_by_subject(samples)
    return val if split == "val" else train
