"""Disc signal-intensity difference ΔSI (spec 5.8), original and robust variants.

Both work on the grey values (0..255) of the 8-bit image under a mask and return the raw
peak difference ``d`` in grey levels; ΔSI = d * 255 / reference, the reference being the CSF
(or presacral-fat) grey level.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from quantitation.outline_registration import register_outline

# robust-variant parameters (chosen on the real-disc erosion/dilation study: quantitation/README.md)
SMOOTH_SIGMA: float = 4.0  # Gaussian smoothing of a reference (CSF, fat) histogram, grey levels
DISC_SMOOTH_SIGMA: float = 5.0  # Gaussian smoothing of a disc histogram, grey levels
MIN_PEAK_SEPARATION: float = 6.0  # peak pairs closer than this count in proportion to their separation
PAIR_TOP_SHARE: float = 0.5  # the peak pair is the mean of the pairs scoring at least this share of the best
END_MASS_HALF_WIDTH: float = 2.0  # an end's mass is the region's share within this many sigma of it ...
END_MASS_SCALE: float = 0.04  # ... and the end counts with m^p / (m^p + this^p): sparse tails cannot be peaks
END_MASS_POWER: float = 4.0
PEAK_STEP_SHARE: float = 0.2  # a pair end's step towards its peak: at most this share of the separation
PEAK_STEP_MAX: float = 10.0  # ... and at most this many grey levels
RIM_RAMP_PX: float = 3.0  # reference regions: pixel weights reach full weight this many pixels inside
DISC_RAMP_SHARE: float = 0.8  # discs: weights reach full weight at this share of the disc's deepest pixel
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
def _histogram(values: NDArray[np.uint8], weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    return np.bincount(values, weights=weights, minlength=256).astype(np.float64)


def _smoothed_histogram(hist: NDArray[np.float64], sigma: float) -> NDArray[np.float64]:
    """``hist`` (256 bins) convolved with a Gaussian of ``sigma`` grey levels."""
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


def _log_slope_and_curvature(hist: NDArray[np.float64], x: float, sigma: float) -> tuple[float, float]:
    """First and second derivative of log h at grey level x, h being ``hist`` smoothed with a Gaussian of
    ``sigma`` and reflected at 0 and 255 as in ``_smoothed_histogram``, evaluated exactly (no grid)."""
    j = np.arange(1, int(np.ceil(4 * sigma)) + 1)
    pos = np.concatenate([-j[::-1], np.arange(hist.size), hist.size - 1 + j]).astype(np.float64)
    count = np.concatenate([hist[j[::-1]], hist, hist[hist.size - 1 - j]])
    u = (x - pos) / sigma
    g = count * np.exp(-0.5 * u * u)
    slope = float(-(g * u).sum() / (sigma * g.sum()))
    return slope, float((g * (u * u - 1.0)).sum() / (sigma**2 * g.sum())) - slope * slope


def _towards_peak(hist: NDArray[np.float64], x: float, sigma: float, cap: float) -> float:
    """One Newton step on log h from x, its length at most ``cap`` and the curvature taken as at least
    1 / cap^2. For a Gaussian population it lands on the peak: the pair score's distance weight puts each
    end about sigma_population^2 / separation outside its peak, and this step takes it back."""
    slope, curvature = _log_slope_and_curvature(hist, x, sigma)
    return x + float(np.clip(slope / max(-curvature, 1.0 / cap**2), -cap, cap))


def robust_peaks(
    values: NDArray[np.uint8],
    *,
    sigma: float = DISC_SMOOTH_SIGMA,
    min_separation: float = MIN_PEAK_SEPARATION,
    weights: NDArray[np.float64] | None = None,
) -> Peaks:
    """The two ΔSI peaks of a region, as a continuous function of its (weighted) histogram.

    On the Gaussian-smoothed histogram h every pair of grey levels i < j scores
    ``e(i) e(j) (j - i) min((j - i) / min_separation, 1)``: the original distance-weighted second-peak
    criterion ``h(k) |k - p1|`` made symmetric (the main peak is scored by its height instead of being
    fixed in advance as the mode) with a soft minimum separation. ``e(k) = h(k) m^p / (m^p + s^p)``, m the
    region's share within ``END_MASS_HALF_WIDTH`` sigma of k, s = ``END_MASS_SCALE``, p =
    ``END_MASS_POWER``: an end with less than about s of the region near it counts far less, so a sparse
    tail (a few percent of the region spread over a hundred levels) cannot be a peak, while any population
    of more than about 2 s is scored by its height alone (the steep power keeps the three-population
    continuity). The pair is the score-weighted mean of
    the lower and of the upper ends over the pairs reaching ``PAIR_TOP_SHARE`` of the best score (a soft
    argmax: when two or three populations of similar height compete, a small change of the mask shifts the
    result a little instead of swapping populations). The distance weight puts each end of the best pair
    slightly outside its peak; one safeguarded Newton step on the log histogram (``_towards_peak``, at most
    ``PEAK_STEP_SHARE`` of the separation and ``PEAK_STEP_MAX`` levels) takes it back. A unimodal region
    keeps a small difference (about 1.8 SD: the capped step cannot merge the two ends). ``main`` is the end
    with the higher histogram.
    """
    if values.size == 0:
        raise ValueError("empty region")
    hist = _histogram(values, weights)
    h = _smoothed_histogram(hist, sigma)
    h = h / h.sum()
    k = np.arange(h.size, dtype=np.float64)
    support = np.flatnonzero(h > 0)
    a, b = int(support[0]), int(support[-1]) + 1  # pairs outside the support score 0
    hs, ks = h[a:b], k[a:b]
    cumulative = np.concatenate([[0.0], np.cumsum(h)])
    half = int(round(END_MASS_HALF_WIDTH * sigma))
    idx = np.arange(a, b)
    mass = cumulative[np.minimum(idx + half + 1, h.size)] - cumulative[np.maximum(idx - half, 0)]
    ends = hs * mass**END_MASS_POWER / (mass**END_MASS_POWER + END_MASS_SCALE**END_MASS_POWER)  # sparse ends discounted
    sep = np.maximum(ks[None, :] - ks[:, None], 0.0)  # j - i for i < j, else 0
    score = ends[:, None] * ends[None, :] * sep * np.minimum(sep / min_separation, 1.0)
    top = np.maximum(score - PAIR_TOP_SHARE * score.max(), 0.0)
    if not np.any(top > 0):  # all weight in one grey level
        p = float(np.argmax(h))
        return Peaks(main=p, second=p, n=int(values.size))
    lo = float(ks @ top.sum(axis=1) / top.sum())
    hi = float(ks @ top.sum(axis=0) / top.sum())
    cap = min(PEAK_STEP_SHARE * (hi - lo), PEAK_STEP_MAX)  # hi - lo >= 1: only pairs with j > i score
    lo, hi = _towards_peak(hist, lo, sigma, cap), _towards_peak(hist, hi, sigma, cap)
    main, second = (hi, lo) if np.interp(hi, k, h) >= np.interp(lo, k, h) else (lo, hi)
    return Peaks(main=main, second=second, n=int(values.size))


def robust_level(
    values: NDArray[np.uint8], *, sigma: float = SMOOTH_SIGMA, weights: NDArray[np.float64] | None = None
) -> float:
    """Reference grey level of a region (CSF, fat): main peak of the smoothed (optionally weighted)
    histogram. Saturated values are kept: a CSF at the top of the scale is best estimated by 255."""
    if values.size == 0:
        raise ValueError("empty region")
    h = _smoothed_histogram(_histogram(values, weights), sigma)
    return _refine(h, int(np.argmax(h)))


def bright_class_level(
    values: NDArray[np.uint8], *, sigma: float = SMOOTH_SIGMA, weights: NDArray[np.float64] | None = None,
    min_share: float = 0.1, separation: float = 3.0,
) -> float:
    """CSF reference: :func:`robust_level` of the brighter Otsu class of the region.

    A segmented thecal sac holds CSF and, near the conus, the dark cord and cauda equina; where they fill
    most of it, the main peak of the whole region is nerve tissue, not CSF (measured on SPIDER: references of
    21-42 grey levels, ΔSI inflated five- to eightfold). CSF is the bright fluid on T2, so its level is the
    main peak of the upper class when the region's own main peak lies in the lower class and the two classes
    are distinct populations (means at least ``separation`` pooled SDs apart: 3.5-4.8 for the real cord and
    CSF of SPIDER, 2.7 for the halves of one normal population); otherwise the CSF dominates
    and its main peak is taken unchanged (the peak of a truncated class would read high by most of a noise
    SD). The upper class must hold at least ``min_share`` of the weight."""
    if values.size == 0:
        raise ValueError("empty region")
    v = np.asarray(values, dtype=np.uint8).reshape(-1)
    w = np.ones(v.size) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    whole = robust_level(v, sigma=sigma, weights=w)
    threshold, _ = cv2.threshold(v.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    upper = v > threshold
    if whole > threshold or not upper.any() or w[upper].sum() < min_share * w.sum() or w[~upper].sum() <= 0:
        return whole
    mean_lo, mean_hi = np.average(v[~upper], weights=w[~upper]), np.average(v[upper], weights=w[upper])
    var_lo = np.average((v[~upper] - mean_lo) ** 2, weights=w[~upper])
    var_hi = np.average((v[upper] - mean_hi) ** 2, weights=w[upper])
    if mean_hi - mean_lo < separation * np.sqrt(max((var_lo + var_hi) / 2, 1.0)):
        return whole  # one population split in two (its halves lie about 2.7 SD apart), not fluid and tissue
    return robust_level(v[upper], sigma=sigma, weights=w[upper])


def _inside_distance(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Distance of each mask pixel (row-major, as ``image[mask]``) to the nearest pixel outside the mask
    (the image border counts as outside)."""
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1][mask]


def rim_weights(mask: NDArray[np.bool_], ramp_px: float = RIM_RAMP_PX) -> NDArray[np.float64]:
    """Weight of each mask pixel (row-major order, as ``image[mask]``): rises linearly with the distance
    to the nearest outside pixel, (d - 0.5) / ramp, capped at 1. Partial-volume pixels on the rim, whose
    share changes most when a segmentation grows or shrinks by a pixel, count less."""
    return np.clip((_inside_distance(mask) - 0.5) / ramp_px, 0.0, 1.0)


def disc_weights(mask: NDArray[np.bool_], share: float = DISC_RAMP_SHARE) -> NDArray[np.float64]:
    """Weight of each disc pixel (row-major order, as ``image[mask]``) by its relative depth: (d - 0.5) /
    (share * (d_max - 0.5)), capped at 1, d being the distance to the nearest outside pixel and d_max the
    disc's largest. The rim (partial volume, the pixels a one-pixel change of the segmentation adds or
    removes) counts less, and because the ramp scales with the disc's own thickness an eroded or dilated
    mask weights the same anatomical layers about as the original does."""
    dist = _inside_distance(mask)
    if dist.size == 0:
        return dist
    return _depth_ramp(dist, share)  # d >= 1 inside a mask


def _depth_ramp(depth: NDArray[np.float64], share: float = DISC_RAMP_SHARE) -> NDArray[np.float64]:
    """(depth - 0.5) / (share * (max depth - 0.5)), capped at 0 and 1: full weight from ``share`` of the
    deepest pixel's depth on (``disc_weights``, ``registered_disc_peaks``)."""
    return np.clip((depth - 0.5) / (share * (depth.max() - 0.5)), 0.0, 1.0)


def disc_peaks(values: NDArray[np.uint8], weights: NDArray[np.float64] | None = None) -> Peaks:
    """Robust ΔSI peaks of a disc (``robust_peaks``): pixels weighted (normally ``disc_weights``),
    saturated values (0 and 255: the floor and ceiling of the 8-bit scaling, not tissue levels) left out."""
    w = np.ones(values.size) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w * ((values > 0) & (values < 255))
    if not np.any(w > 0):
        raise ValueError("no unsaturated pixels in the region")
    return robust_peaks(values, weights=w)


def registered_disc_peaks(
    image: NDArray[np.uint8], mask: NDArray[np.bool_], allowed: NDArray[np.bool_] | None = None
) -> Peaks:
    """ΔSI peaks of a disc (default method): the outline is first registered to the image
    (``outline_registration.register_outline``: each half moved by whole pixels to the dark line that bounds
    the disc), then ``disc_peaks`` reads the registered region, each pixel weighted by its membership times
    its relative depth, (depth - 0.5) / (``DISC_RAMP_SHARE`` (max depth - 0.5)) capped at 1, as
    ``disc_weights`` does for a mask. ``image`` and ``mask`` share one grid that extends ``reach`` + 1 pixels
    beyond the mask; ``allowed`` limits where the outline may grow."""
    outline = register_outline(image, mask, allowed=allowed)
    inside = outline.membership > 0
    return disc_peaks(image[inside], outline.membership[inside] * _depth_ramp(outline.depth[inside]))


def delta_si(difference: float, reference: float) -> float:
    """ΔSI on the reference-normalised 0..255 scale."""
    return difference * 255.0 / reference
