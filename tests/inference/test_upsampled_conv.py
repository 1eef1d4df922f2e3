"""The factored fusion conv (inference.upsampled_conv): the same numbers as convolving the upsampled maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inference.fuse import fold_batchnorm
from inference.model import build_model, factored_copy
from inference.upsampled_conv import conv_of_upsampled, phase_kernel


def _plain(conv: nn.Conv2d, parts, size) -> torch.Tensor:
    ups = [x if s == 1 else F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x, s in parts]
    return conv(torch.cat(ups, 1))


def _parts(size: tuple[int, int], spec: list[tuple[int, int]], batch: int = 2) -> list[tuple[torch.Tensor, int]]:
    h, w = size
    return [(torch.randn(batch, c, h // s, w // s, dtype=torch.float64), s) for c, s in spec]


@pytest.mark.parametrize("min_factor", [2, 4, 99])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("size", [(32, 48), (16, 16)])
def test_equals_the_plain_convolution_in_float64(min_factor: int, bias: bool, size: tuple[int, int]) -> None:
    """Factors 8, 4, 2 and 1 with odd channel counts on a non-square grid, border ring included; with
    ``min_factor`` 2 every upsampled part takes the factored path, with 99 none does."""
    torch.manual_seed(0)
    parts = _parts(size, [(3, 8), (5, 4), (2, 2), (4, 1)])
    conv = nn.Conv2d(14, 6, 3, padding=1, bias=bias).double().requires_grad_(False)
    want = _plain(conv, parts, size)
    got = conv_of_upsampled(conv, parts, size, min_factor=min_factor)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-12 * float(want.abs().max())


@pytest.mark.parametrize("bias", [True, False])
def test_every_part_upsampled_and_factored(bias: bool) -> None:
    """No plain part at all (the sum starts from the bias alone)."""
    torch.manual_seed(4)
    parts = _parts((24, 16), [(3, 8), (2, 2)])
    conv = nn.Conv2d(5, 4, 3, padding=1, bias=bias).double().requires_grad_(False)
    want = _plain(conv, parts, (24, 16))
    got = conv_of_upsampled(conv, parts, (24, 16), min_factor=2)
    assert float((got - want).abs().max()) < 1e-12 * float(want.abs().max())


def test_a_wrong_tap_weight_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is sharp: one phase-kernel entry off by 1 % changes the interior."""
    from inference import upsampled_conv

    torch.manual_seed(1)
    parts = _parts((32, 32), [(3, 4)])
    conv = nn.Conv2d(3, 2, 3, padding=1).double().requires_grad_(False)
    want = _plain(conv, parts, (32, 32))

    def off_by_one_percent(s: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        kernel = phase_kernel(s, dtype, device).clone()
        kernel[5, 4, 1, 1] *= 1.01  # phase 5, centre tap, centre offset
        return kernel

    monkeypatch.setattr(upsampled_conv, "phase_kernel", off_by_one_percent)
    broken = conv_of_upsampled(conv, parts, (32, 32))
    assert float((broken - want).abs().max()) > 1e-4


def test_phase_kernel_rows_sum_to_one_per_tap() -> None:
    """Each output phase of each tap is a bilinear interpolation: its low-resolution weights sum to 1, also
    for a factor outside the precomputed table."""
    for s in (2, 4, 6, 8):
        k = phase_kernel(s, torch.float64, torch.device("cpu"))
        assert k.shape == (s * s, 9, 3, 3)
        torch.testing.assert_close(k.sum(dim=(2, 3)), torch.ones(s * s, 9, dtype=torch.float64))


def test_rejects_what_it_was_not_written_for() -> None:
    parts = _parts((16, 16), [(2, 4)])
    with pytest.raises(ValueError, match="3x3 convolution with padding 1"):
        conv_of_upsampled(nn.Conv2d(2, 2, 3, padding=2, dilation=2).double(), parts, (16, 16))
    with pytest.raises(ValueError, match="does not upsample"):
        conv_of_upsampled(nn.Conv2d(2, 2, 3, padding=1).double(), parts, (16, 20))
    with pytest.raises(ValueError, match="expects 3"):
        conv_of_upsampled(nn.Conv2d(3, 2, 3, padding=1).double(), parts, (16, 16))


@pytest.mark.parametrize(("variant", "shape"), [("light", (1, 3, 128, 192)), ("bianquenet", (1, 3, 64, 64))])
@pytest.mark.parametrize("folded", [True, False])
@pytest.mark.parametrize("min_factor", [4, 2])
def test_network_output_unchanged(variant: str, shape: tuple[int, ...], folded: bool, min_factor: int) -> None:
    """Whole network (float32: its last conv always runs in float32), BatchNorm folded or not: the factored
    fusion gives the same logits up to summation order, and the switch is a plain attribute (state dict
    unchanged, off by default, so training and saved weights are the plain network)."""
    torch.manual_seed(2)
    net = build_model(variant).eval()
    for m in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    if folded:
        net = fold_batchnorm(net)
    assert net.classifier.factored_fusion is False
    x = torch.randn(*shape)
    keys = list(net.state_dict())
    with torch.inference_mode():
        want = net(x)
        factored = factored_copy(net, min_factor)
        got = factored(x)
    assert list(factored.state_dict()) == keys and not any("phase_kernel" in k for k in keys)
    for s in (2, 4, 8):  # the head's kernels, held as non-persistent buffers
        torch.testing.assert_close(getattr(net.classifier, f"phase_kernel_x{s}"),
                                   phase_kernel(s, torch.float32, torch.device("cpu")))
    assert float((got - want).abs().max()) < 2e-6 * float(want.abs().max())
    assert torch.equal(got.argmax(1), want.argmax(1))
