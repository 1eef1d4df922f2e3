"""A few optimisation steps lower the loss; the train loop checkpoints, resumes and writes weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from inference.model import build_model
from inference.training.datasets import phantom_sample
from inference.training.labels import CLASS_WEIGHTS
from inference.training.loss import partial_label_loss
from inference.training.recipe import SourceSpec, TrainConfig
from inference.training.trainer import train
from inference.training.transforms import fit_to_canvas, normalise_1ch


def test_few_steps_lower_the_loss() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model("light")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    samples = [phantom_sample(s, size=64) for s in (1, 2)]
    x = torch.from_numpy(np.stack([normalise_1ch(fit_to_canvas(s.image, None, 64)[0]) for s in samples]))[:, None].expand(-1, 3, -1, -1).contiguous()
    codes = torch.from_numpy(np.stack([s.codes for s in samples])).long()
    tables = torch.from_numpy(np.stack([s.table for s in samples]))
    groups = torch.eye(14)[None].expand(2, -1, -1).contiguous()
    gw = torch.tensor(CLASS_WEIGHTS)[None].expand(2, -1).contiguous()
    losses = []
    model.train()
    for _ in range(12):
        lv = partial_label_loss(model(x), codes, tables, groups, gw)
        opt.zero_grad()
        lv.total.backward()
        opt.step()
        losses.append(float(lv.total.detach()))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_train_loop_checkpoints_resumes_and_writes_weights(tmp_path: Path) -> None:
    from inference.weights_io import load_weights

    cfg = TrainConfig(input_size=64, steps=2, batch_size=2, val_every=1, threads=2,
                      sources=(SourceSpec(kind="phantom", weight=1.0, count=3, val_count=1),))
    first = train(cfg, tmp_path, resume=False, progress=False)
    assert first.steps_done == 2 and (tmp_path / "checkpoint.pt").is_file()
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    more = train(TrainConfig(**{**cfg.__dict__, "steps": 3}), tmp_path, resume=True, progress=False)
    assert more.steps_done == 3
    assert "resumed from" in (tmp_path / "train.log").read_text()
    loaded = load_weights(more.weights_path)
    assert loaded.variant == "light" and loaded.input_size == 64
    assert loaded.model_card["steps"] == 3
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report[0]["dataset"] == "phantom"
