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
