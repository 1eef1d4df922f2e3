"""Partial-label loss: equals CE on full labels, never treats unlabelled classes as background."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from inference.training.labels import CLASS_WEIGHTS, groups_mask, make_table
from inference.training.loss import code_boundaries, partial_label_loss


def _logits_for(classes: np.ndarray, strength: float = 8.0) -> torch.Tensor:
    one = F.one_hot(torch.from_numpy(classes).long(), 14).permute(2, 0, 1).float()
    return (one * strength)[None]


def test_marginal_ce_equals_ce_on_full_labels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 14, 8, 8)
    target = torch.randint(0, 14, (1, 8, 8))
    table = torch.from_numpy(make_table(range(1, 14)))[None]
    lv = partial_label_loss(logits, target, table, torch.zeros(1, 0, 14), torch.zeros(1, 0))
    assert torch.allclose(lv.ce, F.cross_entropy(logits, target), atol=1e-5)


def test_unlabelled_pixels_may_be_any_unlabelled_class() -> None:
    # a discs-only source: pixel with code 0 may be background, CSF, a body, S1 or fat
    table = torch.from_numpy(make_table([3, 5, 7, 9, 11]))[None]
    codes = torch.zeros(1, 4, 4, dtype=torch.long)
    as_body = partial_label_loss(_logits_for(np.full((4, 4), 6)), codes, table, torch.zeros(1, 0, 14), torch.zeros(1, 0))
    as_bg = partial_label_loss(_logits_for(np.zeros((4, 4), int)), codes, table, torch.zeros(1, 0, 14), torch.zeros(1, 0))
    as_disc = partial_label_loss(_logits_for(np.full((4, 4), 7)), codes, table, torch.zeros(1, 0, 14), torch.zeros(1, 0))
    assert float(as_body.ce) < 0.01 and float(as_bg.ce) < 0.01
    assert float(as_disc.ce) > 5.0  # a disc where the source says "no disc" is penalised


def test_weighted_dice_over_determined_groups() -> None:
    target = np.zeros((16, 16), int)
    target[4:8, 2:14] = 3  # L1/L2 disc
    target[8:14, 2:14] = 4  # L2 body
    table = torch.from_numpy(make_table(range(1, 14)))[None]
    groups = torch.from_numpy(groups_mask([(3,), (4,)]))[None]
    w = torch.tensor([[CLASS_WEIGHTS[3], CLASS_WEIGHTS[4]]])
    perfect = partial_label_loss(_logits_for(target, 20.0), torch.from_numpy(target)[None], table, groups, w)
    swapped = target.copy()
    swapped[target == 3], swapped[target == 4] = 4, 3
    wrong = partial_label_loss(_logits_for(swapped, 20.0), torch.from_numpy(target)[None], table, groups, w)
    assert float(perfect.dice) < 0.02 and float(wrong.dice) > 0.9
    assert w[0, 0] == 0.8 and w[0, 1] == 0.9


def test_code_boundaries_mark_both_sides_of_an_outline() -> None:
    codes = torch.zeros(1, 10, 10, dtype=torch.long)
    codes[0, 4:6, 2:8] = 7  # a 2 x 6 "disc"
    b = code_boundaries(codes)[0].numpy()
    assert b[4:6, 2:8].all()  # the whole thin disc is outline
    assert b[3, 1:9].all() and b[6, 1:9].all() and b[4:6, 1].all() and b[4:6, 8].all()  # the ring outside
    assert int(b.sum()) == 8 * 4  # nothing else: the 8 x 4 box around the disc
    assert code_boundaries(codes, radius=2)[0].sum() == 10 * 6


def test_boundary_weight_makes_outline_errors_cost_more_than_interior_errors() -> None:
    target = np.zeros((16, 16), int)
    target[4:12, 2:14] = 4  # an 8 x 12 body
    table = torch.from_numpy(make_table(range(1, 14)))[None]
    codes = torch.from_numpy(target)[None]
    edge_wrong, core_wrong = target.copy(), target.copy()
    edge_wrong[4, 2:8] = 0  # six pixels of the top row missed
    core_wrong[8, 5:11] = 0  # six pixels in the middle missed
    no_groups = (torch.zeros(1, 0, 14), torch.zeros(1, 0))

    def ce(pred: np.ndarray, bw: float) -> float:
        return float(partial_label_loss(_logits_for(pred), codes, table, *no_groups, boundary_weight=bw).ce)

    assert abs(ce(edge_wrong, 0.0) - ce(core_wrong, 0.0)) < 1e-6  # plain mean: same number of errors
    assert ce(edge_wrong, 3.0) > 2.0 * ce(core_wrong, 3.0)
    assert abs(ce(target, 3.0) - ce(target, 0.0)) < 1e-3  # a perfect prediction stays near zero either way
