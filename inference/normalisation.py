"""The network-input normalisation (spec 2.8 step 4), in one place for inference, training and TTA.

CLAHE (OpenCV, clip limit 2.0, 8x8 tiles) on the 8-bit model-grid image, then x/255 and the spec's
mean/std. Needs only OpenCV and NumPy (no pydicom), so the GPU training box can use it too.
"""

from __future__ import annotations

import cv2
import numpy as np

NORM_MEAN = 0.2703814
NORM_STD = 0.24898738
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = (8, 8)


def clahe(image8: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES).apply(image8)


def normalise_1ch(image8: np.ndarray) -> np.ndarray:
    """(S, S) uint8 -> (S, S) float32: CLAHE then the spec normalisation (one of the 3 identical channels)."""
    return (clahe(image8).astype(np.float32) / 255.0 - NORM_MEAN) / NORM_STD


def normalise(image8: np.ndarray) -> np.ndarray:
    """(S, S) uint8 -> (3, S, S) float32 network input (the channel replicated: bit-identical to
    per-channel CLAHE of three identical channels)."""
    x = normalise_1ch(image8)
    return np.ascontiguousarray(np.broadcast_to(x, (3, *x.shape)), dtype=np.float32)
