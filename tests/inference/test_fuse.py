"""BatchNorm folding keeps the network's output."""

from __future__ import annotations

import torch
from torch import nn

from inference import build_model
from inference.fuse import fold_batchnorm

torch.set_num_threads(1)


def _randomise_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def test_folded_light_model_matches() -> None:
    torch.manual_seed(0)
    model = build_model("light").eval()
    _randomise_bn(model)
    folded = fold_batchnorm(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert n_bn == 1  # only the backbone stem, whose raw conv output feeds the skips
    x = torch.randn(2, 3, 128, 192)
    with torch.inference_mode():
        a, b = model(x), folded(x)
    assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.999
    # the original is untouched
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 20


def test_precision_wrapper_fp32_is_the_plain_forward_and_bf16_head_is_close() -> None:
    from inference.precision import PrecisionWrapper

    torch.manual_seed(2)
    model = build_model("light").eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        ref = model(x)
        assert torch.equal(PrecisionWrapper(model, "fp32")(x), ref)
        out = PrecisionWrapper(model, "bf16-head")(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
