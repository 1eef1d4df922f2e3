"""Test-time augmentation: views are warped back onto the model grid exactly, averaged with weights, no flips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_factory import canonical_pattern, make_mr, reorient, source_iop  # noqa: E402
from model_factory import planted_weights  # noqa: E402

from inference import build_model  # noqa: E402
from inference.segmenter import Segmenter  # noqa: E402
from inference.tta import (  # noqa: E402
    TTA_POLICIES,
    TTAView,
    average_views,
    parse_views,
    predict_with_views,
    resolve_policy,
    view_image,
)
from inference.weights_io import save_weights  # noqa: E402

torch.set_num_threads(1)
S = 128


def _bright_box_image() -> tuple[np.ndarray, np.ndarray]:
    """(S, S) uint8 image with an off-centre bright rectangle (rows 30-69, cols 80-109) and its mask."""
    img = np.full((S, S), 40, np.uint8)
    mask = np.zeros((S, S), bool)
    mask[30:70, 80:110] = True
    img[mask] = 220
    return img, mask


def _threshold_net(batch: np.ndarray) -> np.ndarray:
    """A 'network' that calls a pixel class 1 where the normalised input is bright: (N,3,S,S) -> (N,2,S,S)."""
    x = batch[:, 0]
    logit = 4.0 * x
    p1 = 1.0 / (1.0 + np.exp(-logit))
    return np.stack([1.0 - p1, p1], axis=1).astype(np.float32)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.mark.parametrize("policy", ["scale", "scale-gamma", "gamma"])
def test_views_land_back_on_the_structure(policy: str) -> None:
    img, mask = _bright_box_image()
    probs = predict_with_views(_threshold_net, [img], TTA_POLICIES[policy])[0]
    assert probs.shape == (2, S, S)
    assert np.allclose(probs.sum(0), 1.0, atol=1e-4)
    # an off-centre box: a wrong inverse warp (sign, centre or scale) would move or resize it
    assert _dice(probs.argmax(0) == 1, mask) > 0.97
    # each zoomed view alone, warped back, also sits on the box
    for view in TTA_POLICIES[policy]:
        single = predict_with_views(_threshold_net, [img], (view,))[0]
        assert _dice(single.argmax(0) == 1, mask) > 0.93, view


def test_zoomed_in_view_gives_no_vote_where_it_saw_nothing() -> None:
    # constant probabilities (0.6, 0.4) everywhere: counting the zoomed view's empty border as a vote
    # would drop p0 to 0.3 at the border
    def const(batch: np.ndarray) -> np.ndarray:
        out = np.empty((batch.shape[0], 2, S, S), np.float32)
        out[:, 0], out[:, 1] = 0.6, 0.4
        return out

    views = (TTAView(), TTAView(scale=1.25))
    avg = average_views([const(np.zeros((1, 3, S, S)))[0]] * 2, views)
    assert np.allclose(avg[0], 0.6, atol=1e-5) and np.allclose(avg[1], 0.4, atol=1e-5)


def test_gamma_changes_intensities_not_geometry() -> None:
    img, mask = _bright_box_image()
    darker = view_image(img, TTAView(gamma=1.25))
    assert darker.shape == img.shape and (darker[mask] < img[mask]).all() and (darker[~mask] < img[~mask]).all()
    zoomed = view_image(img, TTAView(scale=1.1))
    assert zoomed[64, 64] == img[64, 64]  # the centre stays put


def test_policy_parsing_and_errors() -> None:
    assert parse_views("off") == (TTAView(),)
    assert parse_views("1,0.9,1.1:1.25") == (TTAView(), TTAView(0.9), TTAView(1.1, 1.25))
    assert resolve_policy(None) == resolve_policy("off")
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        resolve_policy("flip")
    with pytest.raises(ValueError, match="scale"):
        parse_views("-1")  # a negative scale would be a flip: refused
    with pytest.raises(ValueError, match="bad TTA view"):
        parse_views("1:2:3")


def _dataset():
    img, _ = canonical_pattern()
    return make_mr(reorient(img, True, False, True), source_iop(True, False, True), spacing=(0.9, 0.6))


def test_segmenter_tta_off_is_the_plain_prediction_and_on_keeps_probabilities(tmp_path: Path) -> None:
    path = tmp_path / "light.pt"
    save_weights(path, build_model("light"), "light", S)
    ds = _dataset()
    plain = Segmenter(path, device="cpu", precision="fp32").segment([ds])[0]
    off = Segmenter(path, device="cpu", precision="fp32", tta="off").segment([ds])[0]
    assert np.array_equal(plain.probabilities_model, off.probabilities_model)
    on = Segmenter(path, device="cpu", precision="fp32", tta="scale-gamma").segment([ds, ds], batch_size=2)
    assert len(on) == 2 and np.array_equal(on[0].label_map, on[1].label_map)
    p = on[0].probabilities_model.astype(np.float32)
    assert p.shape == (14, S, S) and np.allclose(p.sum(0), 1.0, atol=1e-2)
    assert not np.array_equal(on[0].probabilities_model, plain.probabilities_model)  # the views did count
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        Segmenter(path, device="cpu", precision="fp32", tta="hflip")


def test_segmenter_tta_keeps_threshold_decoding_at_the_image_border(tmp_path: Path) -> None:
    # constant p(CSF) ~ 0.6 everywhere: with correct per-view weights every image pixel stays above 0.5
    bias = [0.0] * 14
    bias[1] = float(np.log(0.6 / 0.4 * 13))
    path = planted_weights(tmp_path, bias, size=S)
    seg = Segmenter(path, device="cpu", precision="fp32", decoding="threshold", tta="scale")
    r = seg.segment([_dataset()])[0]
    assert (r.label_map == 1).all()
