"""`bianque evaluate` and `bianque train` command lines (tiny inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dicom_node.cli import main


def test_evaluate_writes_markdown_and_json(tmp_path: Path, capsys) -> None:
    from inference.model import build_model
    from inference.weights_io import save_weights

    torch.manual_seed(0)
    w = tmp_path / "w.pt"
    save_weights(w, build_model("light"), input_size=64)
    out = tmp_path / "eval.json"
    md = tmp_path / "eval.md"
    rc = main(["evaluate", str(w), "phantom", "--phantoms", "1", "--json", str(out), "--markdown", str(md)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data[0]["dataset"] == "phantom" and data[0]["n_samples"] == 1
    names = {c["name"] for c in data[0]["classes"]}
    assert {"CSF", "L1", "L5/S1", "S1", "presacral fat"} <= names and "background" not in names
    assert "| class | Dice | IoU | n |" in md.read_text()
    assert main(["evaluate", str(w), str(tmp_path / "nowhere")]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_train_rejects_bad_settings(tmp_path: Path, capsys) -> None:
    assert main(["train", "--out", str(tmp_path), "--input-size", "100"]) == 2
    assert "multiple of 64" in capsys.readouterr().err


def test_evaluate_with_test_time_augmentation_on_the_shipped_weights(tmp_path: Path, capsys) -> None:
    # a misaligned un-warp of the rescaled views would cost far more than 0.01 Dice on thin discs
    torch.set_num_threads(2)
    weights = Path(__file__).resolve().parents[2] / "inference" / "weights" / "bianque-light.pt"
    summaries = {}
    for tta in ("off", "scale-gamma"):
        out = tmp_path / f"{tta}.json"
        assert main(["evaluate", str(weights), "phantom", "--phantoms", "1", "--tta", tta, "--json", str(out)]) == 0
        summaries[tta] = json.loads(out.read_text())[0]["summary"]
    assert summaries["off"]["discs"] >= 0.95
    for key in ("discs", "vertebral bodies", "CSF"):
        assert abs(summaries["scale-gamma"][key] - summaries["off"][key]) <= 0.01, (key, summaries)
    assert main(["evaluate", str(weights), "phantom", "--phantoms", "1", "--tta", "hflip"]) == 2
    assert "bad TTA view" in capsys.readouterr().err
