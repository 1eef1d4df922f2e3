"""Weights files for tests: networks whose output is known without training."""

from __future__ import annotations

from pathlib import Path

import torch

from inference import build_model
from inference.weights_io import save_weights


def planted_weights(tmp_path: Path, bias: list[float], *, size: int = 128, name: str = "planted.pt") -> Path:
    """A light-variant weights file whose logits are the constant ``bias`` (14 values) everywhere: the final
    conv's weights are zeroed, so the label map is ``argmax(bias)`` at every pixel."""
    torch.manual_seed(0)
    model = build_model("light")
    final = model.classifier.classifier[3]
    with torch.no_grad():
        final.weight.zero_()
        final.bias.copy_(torch.tensor(bias))
    path = tmp_path / name
    save_weights(path, model, "light", size, {"note": "test"}, half=False)
    return path


def random_shifts(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Non-zero BatchNorm shifts and statistics (a fresh BatchNorm has none, which would hide a missed shift)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def deep_hot_light_network() -> torch.nn.Module:
    """A light network shaped like the full one with random weights: layers 3 and 4 amplify until the residual
    stream leaves fp16's range (~3e5), and the ASPP brings its output back to a normal size."""
    torch.manual_seed(0)
    net = random_shifts(build_model("light").eval())
    with torch.no_grad():
        for block in (*net.backbone.layer3, *net.backbone.layer4):
            for m in block.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.mul_(4.0)
        for m in net.classifier.aspp.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(1e-3)
    return net


class PlainCall:
    """Stands in for ``inference.cpu_compile.CompiledForward`` (monkeypatched into inference.precision): calls
    the module as it is, so tests of the compiled modes' wiring stay fast."""

    def __init__(self, module: torch.nn.Module, device_type: str = "cpu") -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)
