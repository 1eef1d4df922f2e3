"""BianqueNet module tree vs the spec's state-dict table; forward shapes; Swin attention maths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bianquenet_keys import (  # noqa: E402
    EXPECTED_BACKBONE_KEYS,
    EXPECTED_KEY_COUNT,
    EXPECTED_PARAMETERS,
    EXPECTED_STATE_ELEMENTS,
    EXPECTED_TRAINABLE,
    expected_checkpoint_table,
)

from inference import build_model  # noqa: E402
from inference.fuse import fold_batchnorm  # noqa: E402
from inference.model import WindowAttention  # noqa: E402
from inference.variants import LIGHT  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def full_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("bianquenet").eval()


def test_table_from_spec_is_self_consistent() -> None:
    table = expected_checkpoint_table()
    assert len(table) == EXPECTED_KEY_COUNT
    assert sum(k.startswith("module.backbone.") for k in table) == EXPECTED_BACKBONE_KEYS
    n = 0
    for shape in table.values():
        size = 1
        for s in shape:
            size *= s
        n += size
    assert n == EXPECTED_STATE_ELEMENTS


def test_every_key_and_shape_matches_the_original_checkpoint(full_model: torch.nn.Module) -> None:
    expected = expected_checkpoint_table()
    got = {f"module.{k}": tuple(v.shape) for k, v in full_model.state_dict().items()}
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    mismatched = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert mismatched == {}
    sd = full_model.state_dict()
    assert all(v.dtype == torch.int64 for k, v in sd.items() if k.endswith("num_batches_tracked"))
    assert all(v.dtype == torch.float32 for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    # the original registers aspp before psp inside the head
    keys = list(sd)
    assert keys.index("classifier.aspp.convs.0.0.weight") < keys.index("classifier.psp.stages.0.1.weight")


def test_parameter_counts(full_model: torch.nn.Module) -> None:
    params = list(full_model.parameters())
    assert sum(p.numel() for p in params) == EXPECTED_PARAMETERS
    assert sum(p.numel() for p in params if p.requires_grad) == EXPECTED_TRAINABLE
    assert sum(v.numel() for v in full_model.state_dict().values()) == EXPECTED_STATE_ELEMENTS


def test_shift_masks_and_relative_index(full_model: torch.nn.Module) -> None:
    sd = full_model.state_dict()
    masks = [k for k in sd if k.endswith(("upper_lower_mask", "left_right_mask"))]
    assert len(masks) == 6
    for k in masks:
        assert int(torch.isinf(sd[k]).sum()) == 2048
        assert bool((sd[k][torch.isfinite(sd[k])] == 0).all())
    ul = sd["classifier.swin_skip_layer1.stage1.layers.0.1.attention_block.fn.fn.upper_lower_mask"]
    # query in row 0 (token 0) must not see a key in row 7 (token 56); may see row 3 (token 24)
    assert ul[0, 56] == float("-inf") and ul[0, 24] == 0 and ul[60, 56] == 0
    lr = sd["classifier.swin_skip_layer1.stage1.layers.0.1.attention_block.fn.fn.left_right_mask"]
    assert lr[0, 7] == float("-inf") and lr[0, 3] == 0 and lr[7, 4] == 0
    # relative index is a (non-persistent) buffer: moves with .to(), absent from the state dict
    buffers = dict(full_model.named_buffers())
    assert "classifier.swin_skip_conv1.stage1.layers.0.0.attention_block.fn.fn.relative_index" in buffers
    assert not any("relative_index" in k for k in sd)


def _reference_window_attention(attn: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Slow per-window loop written from spec 2.4, for comparison."""
    ws, d, heads, hd = attn.window, attn.window // 2, attn.heads, attn.head_dim
    if attn.shifted:
        x = torch.roll(x, (-d, -d), (1, 2))
    b, h, w, _ = x.shape
    qkv = attn.to_qkv(x)
    q, k, v = qkv.chunk(3, dim=-1)
    out = torch.zeros(b, h, w, heads * hd)
    n_h, n_w = h // ws, w // ws
    for wi in range(n_h):
        for wj in range(n_w):
            sl = (slice(None), slice(wi * ws, (wi + 1) * ws), slice(wj * ws, (wj + 1) * ws))
            qw, kw, vw = (t[sl].reshape(b, ws * ws, heads, hd) for t in (q, k, v))
            bias = torch.zeros(ws * ws, ws * ws)
            for qi in range(ws * ws):
                for ki in range(ws * ws):
                    dr = ki // ws - qi // ws
                    dc = ki % ws - qi % ws
                    bias[qi, ki] = attn.pos_embedding[dr + ws - 1, dc + ws - 1]
            if attn.shifted and wi == n_h - 1:
                bias = bias + attn.upper_lower_mask
            if attn.shifted and wj == n_w - 1:
                bias = bias + attn.left_right_mask
            for hh in range(heads):
                s = qw[:, :, hh] @ kw[:, :, hh].transpose(1, 2) * hd**-0.5 + bias
                o = s.softmax(-1) @ vw[:, :, hh]
                out[sl][..., hh * hd:(hh + 1) * hd] = o.reshape(b, ws, ws, hd)
    out = attn.to_out(out)
    if attn.shifted:
        out = torch.roll(out, (d, d), (1, 2))
    return out


@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_matches_reference(shifted: bool) -> None:
    torch.manual_seed(1)
    attn = WindowAttention(dim=6, heads=3, head_dim=4, window=8, shifted=shifted).eval()
    x = torch.randn(2, 16, 24, 6)
    with torch.no_grad():
        fast = attn(x)
        ref = _reference_window_attention(attn, x)
    assert torch.allclose(fast, ref, atol=1e-5)
    # the CUDA path (scaled_dot_product_attention with the additive mask) gives the same numbers
    attn.attend = lambda q, k, v, bias, use_sdpa: WindowAttention.attend(attn, q, k, v, bias, True)
    with torch.no_grad():
        assert torch.allclose(attn(x), ref, atol=1e-5)


@pytest.mark.parametrize("size", [(512, 512), (320, 320), (384, 512), (320, 192)])
def test_light_forward_shapes(size: tuple[int, int]) -> None:
    model = build_model("light").eval()
    with torch.inference_mode():
        y = model(torch.randn(2, 3, *size))
    assert y.shape == (2, 14, *size)
    assert torch.isfinite(y).all()


def test_full_forward_shape_non_square(full_model: torch.nn.Module) -> None:
    with torch.inference_mode():
        y = full_model(torch.randn(1, 3, 256, 320))
    assert y.shape == (1, 14, 256, 320)
    assert torch.isfinite(y).all()


def test_input_not_multiple_of_64_is_a_clear_error() -> None:
    model = build_model("light").eval()
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.randn(1, 3, 480, 448))


def test_light_variant_is_small_and_from_config() -> None:
    model = build_model(LIGHT)
    n = sum(p.numel() for p in model.parameters())
    assert 2_000_000 <= n <= 8_000_000
    assert model.config.name == "light"
    with pytest.raises(ValueError, match="unknown model variant"):
        build_model("resnet9000")


def test_batchnorm_folding_of_the_full_model(full_model: torch.nn.Module) -> None:
    # 121 BatchNorms = 812-key table's num_batches_tracked entries; all but the stem's fold into convs
    before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in full_model.modules())
    folded = fold_batchnorm(full_model)
    assert before == 121 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == 1
    assert len(full_model.state_dict()) == 812
