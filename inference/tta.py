"""Test-time augmentation (TTA): average softmax probabilities over a few views of one prepared slice.

A view is a small isotropic rescaling about the canvas centre and/or a gamma change of the un-CLAHE'd
8-bit model-grid image; CLAHE and the spec normalisation are applied to each view as at inference.
No flips: a left-right flip swaps anterior and posterior, which the network must tell apart.
Each view's probabilities are warped back onto the model grid and averaged (pixels a zoomed-in view
did not see get no vote from it), so the result is again a probability map that sums to 1 per pixel.

Policies are named (``TTA_POLICIES``) so that a configuration key can select one; ``"off"`` is the single
identity view (bit-identical to no TTA).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from inference.normalisation import normalise


@dataclass(frozen=True)
class TTAView:
    """One view: ``scale`` > 1 zooms in (about the canvas centre), ``gamma`` != 1 changes intensities."""

    scale: float = 1.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.scale <= 2.0:
            raise ValueError(f"TTA scale must lie in [0.5, 2], got {self.scale}")
        if not 0.25 <= self.gamma <= 4.0:
            raise ValueError(f"TTA gamma must lie in [0.25, 4], got {self.gamma}")

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.gamma == 1.0


TTA_POLICIES: dict[str, tuple[TTAView, ...]] = {
    "off": (TTAView(),),
    "scale": (TTAView(), TTAView(scale=0.9), TTAView(scale=1.1)),
    "gamma": (TTAView(), TTAView(gamma=0.8), TTAView(gamma=1.25)),
    "scale-gamma": (TTAView(), TTAView(scale=0.9, gamma=0.8), TTAView(scale=1.1, gamma=1.25)),
}


def resolve_policy(policy: str | Sequence[TTAView] | None) -> tuple[TTAView, ...]:
    """A policy name, an explicit sequence of views, or None ("off") -> the views (identity first if any)."""
    if policy is None:
        return TTA_POLICIES["off"]
    if isinstance(policy, str):
        if policy not in TTA_POLICIES:
            raise ValueError(f"unknown test-time augmentation {policy!r}; use one of {tuple(TTA_POLICIES)}")
        return TTA_POLICIES[policy]
    views = tuple(policy)
    if not views or not all(isinstance(v, TTAView) for v in views):
        raise ValueError("test-time augmentation needs at least one TTAView")
    return views


def parse_views(text: str) -> tuple[TTAView, ...]:
    """``"off"`` / a policy name, or comma-separated ``scale[:gamma]`` items, e.g. ``"1,0.9,1.1:1.25"``."""
    text = text.strip()
    if text in TTA_POLICIES:
        return TTA_POLICIES[text]
    views = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"bad TTA view {item!r}: expected scale or scale:gamma")
        try:
            views.append(TTAView(float(parts[0]), float(parts[1]) if len(parts) == 2 else 1.0))
        except ValueError as exc:
            raise ValueError(
                f"bad TTA view {item!r}: use a policy {tuple(TTA_POLICIES)} or scale[:gamma] numbers ({exc})"
            ) from exc
    return resolve_policy(views)


def _scale_matrix(size: int, scale: float) -> np.ndarray:
    c = size / 2 - 0.5
    return np.array([[scale, 0.0, c * (1 - scale)], [0.0, scale, c * (1 - scale)]], dtype=np.float64)


def view_image(image8: np.ndarray, view: TTAView) -> np.ndarray:
    """The (S, S) uint8 model-grid image as ``view`` sees it (before CLAHE)."""
    img = np.asarray(image8, dtype=np.uint8)
    size = img.shape[0]
    if view.gamma != 1.0:
        lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** view.gamma), 0, 255).astype(np.uint8)
        img = lut[img]
    if view.scale != 1.0:
        m = _scale_matrix(size, view.scale)
        warped = cv2.warpAffine(img.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        img = np.clip(np.rint(warped), 0, 255).astype(np.uint8)
    return img


def view_input(image8: np.ndarray, view: TTAView) -> np.ndarray:
    """(3, S, S) float32 network input of ``view`` (CLAHE + normalisation as at inference)."""
    return normalise(view_image(image8, view))


def unwarp_probabilities(probs: np.ndarray, view: TTAView) -> np.ndarray:
    """(C, S, S) probabilities of a view -> the same on the model grid (zero where the view saw nothing)."""
    p = np.asarray(probs, dtype=np.float32)
    if view.scale == 1.0:
        return p
    size = p.shape[-1]
    inv = cv2.invertAffineTransform(_scale_matrix(size, view.scale))
    return np.stack([cv2.warpAffine(c, inv, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in p])


def average_views(view_probs: Sequence[np.ndarray], views: Sequence[TTAView]) -> np.ndarray:
    """Mean of the views' (C, S, S) probabilities back on the model grid, renormalised to sum 1 per pixel.

    A zoomed-in view contributes zeros where it saw nothing; the per-pixel renormalisation makes that
    the mean over the views that did see the pixel (every pixel is seen by the identity view or a
    zoomed-out view)."""
    if len(view_probs) != len(views) or not views:
        raise ValueError("one probability map per TTA view is needed")
    total = sum(unwarp_probabilities(p, v) for p, v in zip(view_probs, views))
    total = np.asarray(total, dtype=np.float32)
    return total / np.maximum(total.sum(0, keepdims=True), 1e-6)


def predict_with_views(
    predict: Callable[[np.ndarray], np.ndarray],
    images8: Sequence[np.ndarray],
    views: Sequence[TTAView],
    identity_inputs: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """TTA-averaged (N, C, S, S) probabilities of N (S, S) uint8 model-grid images.

    ``predict`` maps (N, 3, S, S) inputs to (N, C, S, S) softmax probabilities; it is called once per
    view (so a batch never grows beyond N). ``identity_inputs`` (the images' already normalised inputs)
    are reused for the identity view, so the policy "off" gives exactly the plain prediction."""
    views = tuple(views)
    if not views:
        raise ValueError("test-time augmentation needs at least one TTAView")
    per_view = []
    for v in views:
        if v.identity and identity_inputs is not None:
            batch = np.stack([np.asarray(x, dtype=np.float32) for x in identity_inputs])
        else:
            batch = np.stack([view_input(img, v) for img in images8])
        per_view.append(np.asarray(predict(batch), dtype=np.float32))
    if len(views) == 1 and views[0].identity:
        return per_view[0]
    return np.stack([average_views([p[i] for p in per_view], views) for i in range(len(images8))])
