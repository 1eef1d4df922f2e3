"""Weights files: our format round trip, original-checkpoint layout, wrong variant, missing file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference import build_model
from inference.classes import CLASS_NAMES
from inference.weights_io import (
    WEIGHTS_FORMAT,
    WeightsError,
    file_sha256,
    load_weights,
    save_original_layout,
    save_weights,
)

torch.set_num_threads(1)


def _same_state(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    if atol == 0.0:
        return all(torch.equal(sa[k], sb[k]) for k in sa)
    return all(torch.allclose(sa[k].float(), sb[k].float(), atol=atol, equal_nan=True) for k in sa)


def test_original_checkpoint_layout_round_trip_strict(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = build_model("bianquenet")
    ckpt = tmp_path / "deeplab_upernet_aspp_psp_ab_swin_skips_1288_0.0003.pth"
    save_original_layout(ckpt, model)
    raw = torch.load(ckpt, weights_only=True)
    assert len(raw) == 812 and all(k.startswith("module.") for k in raw)
    loaded = load_weights(ckpt)
    assert loaded.variant == "bianquenet" and loaded.input_size == 512
    assert loaded.source_format == "original-checkpoint"
    assert loaded.sha256 == file_sha256(ckpt)
    assert _same_state(model, loaded.model)
    assert not loaded.model.training

    # without the module. prefix
    torch.save({k[len("module."):]: v for k, v in raw.items()}, ckpt)
    assert _same_state(model, load_weights(ckpt).model)

    # one key missing -> strict check fails with a readable message
    raw.pop("module.classifier.classifier.3.bias")
    torch.save(raw, ckpt)
    with pytest.raises(WeightsError, match="1 missing keys"):
        load_weights(ckpt)


def test_our_format_round_trip_half(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = build_model("light")
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    card = {"training_data": "synthetic", "dice": 0.9}
    path = tmp_path / "w.pt"
    sha = save_weights(path, model, "light", 320, card, half=True)
    assert sha == file_sha256(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == WEIGHTS_FORMAT and raw["variant"] == "light" and raw["input_size"] == 320
    assert raw["class_names"] == list(CLASS_NAMES)
    assert raw["state_dict"]["backbone.conv1.weight"].dtype == torch.float16
    assert raw["state_dict"]["backbone.bn1.running_var"].dtype == torch.float32
    loaded = load_weights(path)
    assert loaded.variant == "light" and loaded.input_size == 320 and loaded.model_card == card
    assert loaded.sha256 == sha and loaded.class_names == CLASS_NAMES
    assert all(v.dtype != torch.float16 for v in loaded.model.state_dict().values())
    assert _same_state(model, loaded.model, atol=2e-3)
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        assert torch.allclose(model.eval()(x), loaded.model(x), atol=0.05)


def test_fp32_storage_is_exact(tmp_path: Path) -> None:
    model = build_model("light")
    path = tmp_path / "w32.pt"
    save_weights(path, model, half=False)
    assert _same_state(model, load_weights(path).model)


def test_wrong_variant_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "light.pt"
    save_weights(path, build_model("light"), "light", 256)
    with pytest.raises(WeightsError, match="holds the 'light' network.*'bianquenet'"):
        load_weights(path, expected_variant="bianquenet")
    # a light state dict handed in as an original checkpoint
    torch.save({f"module.{k}": v for k, v in build_model("light").state_dict().items()}, tmp_path / "o.pth")
    with pytest.raises(WeightsError, match="does not match network variant 'bianquenet'"):
        load_weights(tmp_path / "o.pth")


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    save_weights(path, build_model("light"), "light", 256)
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["backbone.conv1.weight"][0, 0, 0, 0] += 1
    torch.save(raw, path)
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(path)
    with pytest.raises(WeightsError, match="not found.*never downloads"):
        load_weights(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(tmp_path / "junk.pt")
