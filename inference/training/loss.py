"""Partial-label loss: marginal cross-entropy + the paper's weighted soft Dice over determined groups.

Per pixel, ``allowed`` (from the sample's code table) is the set of classes the pixel may belong to.
Cross-entropy is ``-log sum_{c in allowed} p_c`` (equals plain CE for a fully labelled pixel, zero for
an ignored one). Dice runs over the groups a source determines (single classes for level-specific
labels); a pixel is positive when all its allowed classes lie in the group, negative when none does,
otherwise excluded. Weights: 0.9 vertebral bodies, 0.8 discs, 1 others (paper).

Optional boundary emphasis (``boundary_weight`` > 0): informative pixels within ``boundary_radius`` pixels
of a change of label code (an annotated outline) count ``1 + boundary_weight`` times in the cross-entropy,
which is renormalised by the weighted pixel count, so its scale stays that of a mean. Thin structures such
as discs lose most of their Dice at the outline, where the plain mean over all pixels gives little say.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossValue:
    total: torch.Tensor
    ce: torch.Tensor
    dice: torch.Tensor


def allowed_from_codes(codes: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """codes (B,H,W) long, tables (B,256,C) bool -> allowed (B,C,H,W) bool."""
    b, h, w = codes.shape
    flat = tables.reshape(b * 256, -1)
    idx = codes + 256 * torch.arange(b, device=codes.device).view(b, 1, 1)
    return flat[idx.reshape(-1)].view(b, h, w, -1).permute(0, 3, 1, 2)


def code_boundaries(codes: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """codes (B,H,W) long -> bool (B,H,W): pixels whose (2 radius + 1)^2 neighbourhood holds another code."""
    c = codes.unsqueeze(1).float()
    k = 2 * radius + 1
    hi = F.max_pool2d(c, k, stride=1, padding=radius)
    lo = -F.max_pool2d(-c, k, stride=1, padding=radius)
    return (hi != lo).squeeze(1)


def partial_label_loss(
    logits: torch.Tensor,
    codes: torch.Tensor,
    tables: torch.Tensor,
    groups: torch.Tensor,
    group_weights: torch.Tensor,
    dice_weight: float = 1.0,
    eps: float = 1.0,
    boundary_weight: float = 0.0,
    boundary_radius: int = 1,
) -> LossValue:
    """logits (B,C,H,W); codes (B,H,W) long; tables (B,256,C) bool; groups (B,G,C) float; group_weights (B,G)."""
    logits = logits.float()
    allowed = allowed_from_codes(codes, tables)
    logp = F.log_softmax(logits, dim=1)
    neg_inf = torch.finfo(logp.dtype).min
    marg = torch.logsumexp(logp.masked_fill(~allowed, neg_inf), dim=1)  # (B,H,W)
    informative = (allowed.sum(1) < allowed.shape[1]).float()
    if boundary_weight > 0:
        informative = informative * (1.0 + boundary_weight * code_boundaries(codes, boundary_radius).float())
    ce = -(marg * informative).sum() / informative.sum().clamp_min(1)

    if groups.shape[1] == 0 or float(group_weights.sum()) == 0.0:
        dice = torch.zeros((), device=logits.device)
    else:
        p = logp.exp()
        a = allowed.float()
        count_in = torch.einsum("bchw,bgc->bghw", a, groups)
        count_all = a.sum(1, keepdim=True)
        pos = (count_in == count_all) & (count_all > 0)
        valid = pos | (count_in == 0)
        pg = torch.einsum("bchw,bgc->bghw", p, groups)
        inter = (pg * pos).sum((2, 3))
        denom = (pg * valid).sum((2, 3)) + pos.sum((2, 3))
        d = (2 * inter + eps) / (denom + eps)
        dice = ((1 - d) * group_weights).sum() / group_weights.sum().clamp_min(1e-6)
    return LossValue(total=ce + dice_weight * dice, ce=ce, dice=dice)
