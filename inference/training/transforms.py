"""Canvas fitting, augmentations and network-input normalisation for training and evaluation.

Fitting matches inference (``inference.preprocess``): aspect-preserving resize of the whole image
into an S x S canvas (INTER_AREA when shrinking), central zero padding; then CLAHE (OpenCV, clip 2.0,
8x8 tiles) and (x/255 - 0.2703814) / 0.24898738. Augmentations (spec section 3, no left-right flips:
a flip swaps anterior and posterior): random rotation, random scale (the spec's 0.95-1.05 scale-crop,
widened), shift, Gaussian blur (p = 0.5, sigma < 1), gamma/contrast and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from inference.training.labels import CODE_BACKGROUND

from inference.normalisation import NORM_MEAN, NORM_STD, normalise_1ch  # noqa: F401 - re-exported


@dataclass(frozen=True)
class CanvasFit:
    """Where an (h, w) image sits in the S x S canvas."""

    source_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    offset: tuple[int, int]
    size: int

    def crop(self, canvas: np.ndarray) -> np.ndarray:
        (nh, nw), (oy, ox) = self.resized_shape, self.offset
        return canvas[..., oy:oy + nh, ox:ox + nw]


def fit_geometry(shape: tuple[int, int], size: int, spacing: tuple[float, float] | None = None) -> CanvasFit:
    h, w = shape
    sr, sc = spacing or (1.0, 1.0)
    ext_r, ext_c = h * sr, w * sc
    out_sp = max(ext_r, ext_c) / size
    nh = int(min(size, max(1, round(ext_r / out_sp))))
    nw = int(min(size, max(1, round(ext_c / out_sp))))
    return CanvasFit((h, w), (nh, nw), ((size - nh) // 2, (size - nw) // 2), size)


def fit_to_canvas(
    image8: np.ndarray, codes: np.ndarray | None, size: int, spacing: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, CanvasFit]:
    g = fit_geometry(image8.shape[:2], size, spacing)
    (nh, nw), (oy, ox) = g.resized_shape, g.offset
    h, w = image8.shape[:2]
    interp = cv2.INTER_AREA if nh < h and nw < w else cv2.INTER_LINEAR
    img = np.zeros((size, size), np.uint8)
    img[oy:oy + nh, ox:ox + nw] = np.clip(np.rint(cv2.resize(image8.astype(np.float32), (nw, nh), interpolation=interp)), 0, 255).astype(np.uint8)
    cod = None
    if codes is not None:
        cod = np.full((size, size), CODE_BACKGROUND, np.uint8)
        cod[oy:oy + nh, ox:ox + nw] = cv2.resize(codes, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return img, cod, g


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.85, 1.15)
    shift_frac: float = 0.06
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.8, 1.2)
    noise_p: float = 0.3
    noise_sigma: tuple[float, float] = (1.0, 6.0)


def augment(image8: np.ndarray, codes: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random geometric + intensity augmentation of a canvas image (uint8) and its codes."""
    s = image8.shape[0]
    ang = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    sc = math.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    m = cv2.getRotationMatrix2D((s / 2 - 0.5, s / 2 - 0.5), ang, sc)
    m[:, 2] += rng.uniform(-cfg.shift_frac, cfg.shift_frac, 2) * s
    img = cv2.warpAffine(image8.astype(np.float32), m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    cod = cv2.warpAffine(codes, m, (s, s), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=CODE_BACKGROUND)
    if rng.random() < cfg.blur_p:
        sig = rng.uniform(*cfg.blur_sigma)
        if sig > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), sig)
    x = img / 255.0
    x = np.power(np.clip(x, 0, 1), rng.uniform(*cfg.gamma))
    x = (x - 0.5) * rng.uniform(*cfg.contrast) + 0.5 + rng.uniform(-0.05, 0.05)
    x = x * 255.0
    if rng.random() < cfg.noise_p:
        x = x + rng.normal(0, rng.uniform(*cfg.noise_sigma), x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), cod
