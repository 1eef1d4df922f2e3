"""Per-class Dice and IoU (paper Table 2 metrics) on the original pixel grid, counting only labelled classes.

For each sample, the network sees the canvas-fitted, CLAHE-normalised image (optionally several
test-time views, :mod:`inference.tta`, whose softmax probabilities are averaged); the probabilities are
cropped to the image area, resized back to the sample's own grid (bilinear) and turned into a label map
by argmax (``postprocessing="none"``, default: the network alone) or by :func:`inference.postprocess.postprocess`
(``"fixed"``: morphology with the network's levels; ``"sacrum"``: morphology and level assignment counted
from the sacrum). A class counts for a sample when the source labels it exactly there (``Sample.labelled``)
and the reference mask is non-empty; the score of a class is the mean over such samples. The summary adds
level-agnostic Dice of all discs and of all vertebral bodies as one structure (``ANY_LEVEL_GROUPS``),
also for sources without levels (Vesal: its five lowest discs), mean over the samples that label them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from inference.postprocess import postprocess
from inference.training.datasets import CLASS_NAMES, Sample
from inference.training.labels import BODIES, DISCS, S1
from inference.training.transforms import fit_to_canvas
from inference.tta import TTAView, predict_with_views


POSTPROCESSINGS = ("none", "fixed", "sacrum")
# Level-agnostic scores: the group's classes as one structure, on every source that labels the group
# (also where it labels no single class exactly, e.g. discs without levels); see Sample.group_target.
ANY_LEVEL_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("discs (any level)", DISCS), ("vertebral bodies (any level)", BODIES + (S1,)),
)


@dataclass(frozen=True)
class ClassScore:
    name: str
    index: int
    dice: float
    iou: float
    n: int  # samples counted


@dataclass(frozen=True)
class EvalReport:
    dataset: str
    n_samples: int
    classes: tuple[ClassScore, ...]
    summary: dict[str, float]  # disc / vertebral body / CSF / all means (only over counted classes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def markdown(self) -> str:
        lines = [f"Dataset `{self.dataset}` ({self.n_samples} slices)", "", "| class | Dice | IoU | n |", "|---|---|---|---|"]
        for c in self.classes:
            lines.append(f"| {c.name} | {c.dice:.3f} | {c.iou:.3f} | {c.n} |")
        for k, v in self.summary.items():
            lines.append(f"| **{k}** | **{v:.3f}** | | |")
        if not self.summary:
            lines.append("| (nothing to score: this source labels none of the classes or class groups exactly) | | | |")
        return "\n".join(lines)


@torch.no_grad()
def predict_probabilities(
    model: torch.nn.Module, image8: np.ndarray, size: int, device: torch.device | str = "cpu",
    spacing: tuple[float, float] | None = None, tta_scales: Sequence[float] = (1.0,),
    views: Sequence[TTAView] | None = None,
) -> np.ndarray:
    """(C, h, w) float32 softmax probabilities on the image's own grid (TTA-averaged over ``views``,
    default one view per scale of ``tta_scales``)."""
    canvas, _, fit = fit_to_canvas(image8, None, size, spacing)
    views = tuple(views) if views is not None else tuple(TTAView(scale=float(s)) for s in tta_scales)

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
        return torch.softmax(model(x).float(), 1).cpu().numpy()

    probs = predict_with_views(run, [canvas], views)[0]
    crop = fit.crop(probs)
    h, w = image8.shape[:2]
    return np.stack([cv2.resize(np.ascontiguousarray(p), (w, h), interpolation=cv2.INTER_LINEAR) for p in crop])


def predict_labels(
    model: torch.nn.Module, image8: np.ndarray, size: int, device: torch.device | str = "cpu",
    spacing: tuple[float, float] | None = None, tta_scales: Sequence[float] = (1.0,),
    views: Sequence[TTAView] | None = None, postprocessing: str = "none",
) -> np.ndarray:
    """Label map on the image's own grid: argmax, or post-processed (``postprocessing``, module docstring)."""
    if postprocessing not in POSTPROCESSINGS:
        raise ValueError(f"unknown post-processing {postprocessing!r}; use one of {POSTPROCESSINGS}")
    probs = predict_probabilities(model, image8, size, device, spacing, tta_scales, views)
    if postprocessing == "none":
        return probs.argmax(0).astype(np.uint8)
    return postprocess(probs, level_assignment="sacrum" if postprocessing == "sacrum" else "off").label_map


def score_samples(
    predictions: Sequence[np.ndarray], samples: Sequence[Sample], dataset: str,
) -> EvalReport:
    per: dict[int, list[tuple[float, float]]] = {}
    any_level: dict[str, list[float]] = {}
    for pred, s in zip(predictions, samples):
        for c in s.labelled:
            t = s.target(c)
            if not t.any():
                continue
            pm = pred == c
            inter = float((pm & t).sum())
            union = float((pm | t).sum())
            dice = 2 * inter / (float(pm.sum()) + float(t.sum()))
            per.setdefault(c, []).append((dice, inter / union if union else 1.0))
        for key, group in ANY_LEVEL_GROUPS:
            ref = s.group_target(group)
            if ref is not None:
                positive, scored = ref
                pm = np.isin(pred, group) & scored
                any_level.setdefault(key, []).append(
                    2 * float((pm & positive).sum()) / (float(pm.sum()) + float(positive.sum())))
    classes = tuple(
        ClassScore(CLASS_NAMES[c], c, float(np.mean([d for d, _ in v])), float(np.mean([i for _, i in v])), len(v))
        for c, v in sorted(per.items())
    )
    summary: dict[str, float] = {}
    by = {c.index: c for c in classes}
    for key, idx in (("discs", DISCS), ("vertebral bodies", BODIES + (S1,)), ("CSF", (1,))):
        vals = [by[i].dice for i in idx if i in by]
        if vals:
            summary[key] = float(np.mean(vals))
    summary.update({key: float(np.mean(v)) for key, v in any_level.items()})
    if classes:
        summary["all labelled classes"] = float(np.mean([c.dice for c in classes]))
    return EvalReport(dataset=dataset, n_samples=len(samples), classes=classes, summary=summary)


def evaluate_model(
    model: torch.nn.Module, samples: Sequence[Sample], size: int, dataset: str, device: torch.device | str = "cpu",
    tta_scales: Sequence[float] = (1.0,), views: Sequence[TTAView] | None = None, postprocessing: str = "none",
) -> EvalReport:
    model.eval()
    preds = [predict_labels(model, s.image, size, device, s.spacing_mm, tta_scales, views, postprocessing)
             for s in samples]
    return score_samples(preds, samples, dataset)


def write_report(reports: Sequence[EvalReport], out_json: Path, out_md: Path | None = None) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    if out_md is not None:
        out_md.write_text("\n\n".join(r.markdown() for r in reports) + "\n")
