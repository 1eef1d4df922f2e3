"""Disc signal-intensity difference ΔSI (spec 5.8), original and robust variants.

Both work on the grey values (0..255) of the 8-bit image under a mask and return the raw
peak difference ``d`` in grey levels; ΔSI = d * 255 / reference, the reference being the CSF
(or presacral-fat) grey level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

# robust-variant parameters (chosen on the real-disc erosion/dilation study, see bench/results)
SMOOTH_SIGMA: float = 4.0  # Gaussian smoothing of the histogram, grey levels
MIN_PEAK_SEPARATION: float = 6.0  # a second peak closer than this to the main one is not a peak
RIM_RAMP_PX: float = 3.0  # pixel weights ramp from the mask edge to full weight over this many pixels
SECOND_PEAK_FACTOR: float = 0.95  # the original's distance-weighting factor (spec 5.8 step 3)


@dataclass(frozen=True)
class Peaks:
    """Histogram peaks of one region."""

    main: float  # the reference point (mode / main peak), grey level
    second: float  # the second peak, grey level
    n: int  # number of pixels

    @property
    def difference(self) -> float:
        return abs(self.main - self.second)


# ---------------------------------------------------------------- original (bianque2022) -------------------
def original_mode(values: NDArray[np.uint8]) -> int:
    """Most frequent value; ties go to the value met first in the (row-major) order of ``values``."""
    counts = np.bincount(values, minlength=256)
    candidates = np.flatnonzero(counts == counts.max())
    if candidates.size == 1:
        return int(candidates[0])
    first = int(np.argmax(np.isin(values, candidates)))
    return int(values[first])


def original_peaks(values: NDArray[np.uint8]) -> Peaks:
    """``calcu_Sigs`` of the original code: mode, and the distance-weighted second peak of the raw
    256-bin histogram over [0, 255) (value 255 dropped, no smoothing)."""
    if values.size == 0:
        raise ValueError("empty region")
    mode = original_mode(values)
    hist = np.bincount(values, minlength=256).astype(np.float64)
    hist[255] = 0.0  # OpenCV calcHist range [0, 255): 255 falls outside
    p1 = int(np.argmax(hist))
    k = np.arange(256, dtype=np.float64)
    p2 = int(np.argmax(np.abs(k - SECOND_PEAK_FACTOR * p1) * hist))
    return Peaks(main=float(mode), second=float(p2), n=int(values.size))


# ---------------------------------------------------------------- robust (default) ------------------------
def _smoothed_histogram(
    values: NDArray[np.uint8], sigma: float, weights: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    hist = np.bincount(values, weights=weights, minlength=256).astype(np.float64)
    radius = int(np.ceil(4 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    # reflect at 0 and 255 so that a peak at the ends is not pulled inward
    padded = np.pad(hist, radius, mode="reflect")
    return np.convolve(padded, kernel, mode="valid")


def _refine(h: NDArray[np.float64], k: int) -> float:
    """Sub-level position of a histogram maximum at bin k (parabola through k-1, k, k+1)."""
    if k <= 0 or k >= h.size - 1:
        return float(k)
    a, b, c = h[k - 1], h[k], h[k + 1]
    den = a - 2 * b + c
    if den >= 0:
        return float(k)
    return float(k + 0.5 * (a - c) / den)


def _climb(h: NDArray[np.float64], k: int) -> int:
    """Walk uphill from bin k to the nearest local maximum."""
    n = h.size
    while True:
        left = h[k - 1] if k > 0 else -np.inf
        right = h[k + 1] if k < n - 1 else -np.inf
        if left > h[k] and left >= right:
            k -= 1
        elif right > h[k]:
            k += 1
        else:
            return k


def robust_peaks(
    values: NDArray[np.uint8],
    *,
    sigma: float = SMOOTH_SIGMA,
    min_separation: float = MIN_PEAK_SEPARATION,
    weights: NDArray[np.float64] | None = None,
) -> Peaks:
    """Main and second peak on a Gaussian-smoothed histogram.

    * main peak: maximum of the smoothed histogram (sub-level refined);
    * second peak: the original distance-weighted choice argmax |k - p1| * h(k), made on the smoothed
      histogram and then moved uphill to the local maximum it belongs to; accepted when that maximum
      is at least ``min_separation`` from the main peak. Otherwise the disc has no second peak and the
      distance-weighted point (a shoulder, about one histogram SD from the main peak) is kept, so that a
      unimodal disc gives a small, stable difference, as the published references expect.
    """
    if values.size == 0:
        raise ValueError("empty region")
    h = _smoothed_histogram(values, sigma, weights)
    k1 = int(np.argmax(h))
    p1 = _refine(h, k1)
    k = np.arange(h.size, dtype=np.float64)
    kw = int(np.argmax(np.abs(k - p1) * h))
    k2 = _climb(h, kw)
    if abs(k2 - p1) >= min_separation and k2 != k1:
        p2 = _refine(h, k2)
    else:
        p2 = float(kw)
    return Peaks(main=p1, second=p2, n=int(values.size))


def robust_level(
    values: NDArray[np.uint8], *, sigma: float = SMOOTH_SIGMA, weights: NDArray[np.float64] | None = None
) -> float:
    """Reference grey level of a region (CSF, fat): main peak of the smoothed (optionally weighted)
    histogram. Saturated values are kept: a CSF at the top of the scale is best estimated by 255."""
    if values.size == 0:
        raise ValueError("empty region")
    h = _smoothed_histogram(values, sigma, weights)
    return _refine(h, int(np.argmax(h)))


def rim_weights(mask: NDArray[np.bool_], ramp_px: float = RIM_RAMP_PX) -> NDArray[np.float64]:
    """Weight of each mask pixel (row-major order, as ``image[mask]``): rises linearly with the distance
    to the nearest outside pixel, (d - 0.5) / ramp, capped at 1. Partial-volume pixels on the rim, whose
    share changes most when a segmentation grows or shrinks by a pixel, count less."""
    padded = np.pad(mask, 1)
    dist = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    return np.clip((dist[mask] - 0.5) / ramp_px, 0.0, 1.0)


def disc_peaks(values: NDArray[np.uint8], weights: NDArray[np.float64] | None = None) -> Peaks:
    """Robust ΔSI peaks of a disc: rim-weighted, saturated values (0 and 255: the floor and ceiling of
    the 8-bit scaling, not tissue levels) left out, smoothed histogram with a minimum separation."""
    w = np.ones(values.size) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w * ((values > 0) & (values < 255))
    if not np.any(w > 0):
        raise ValueError("no unsaturated pixels in the region")
    return robust_peaks(values, weights=w)


def delta_si(difference: float, reference: float) -> float:
    """ΔSI on the reference-normalised 0..255 scale."""
    return difference * 255.0 / reference
