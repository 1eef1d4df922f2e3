"""Portable sample cache (GPU data) round trip; recipe parsing; training normalisation = inference's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.training.cache import export_cache, load_cache
from inference.training.datasets import phantom_sample
from inference.training.recipe import config_from_dict, load_recipe
from inference.training.trainer import lr_factor
from inference.training.transforms import NORM_MEAN, NORM_STD, fit_to_canvas, normalise_1ch

REPO = Path(__file__).resolve().parents[2]


def test_cache_round_trip_keeps_codes_tables_and_subjects(tmp_path: Path) -> None:
    samples = [phantom_sample(s, size=96) for s in (4, 5)]
    export_cache(samples, tmp_path)
    back = load_cache(tmp_path)
    for a, b in zip(samples, back):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.codes, b.codes)
        assert np.array_equal(a.table, b.table) and a.groups == b.groups and a.subject == b.subject
        assert b.eval_table is None


def test_cache_round_trip_keeps_the_scoring_table(tmp_path: Path) -> None:
    """A source whose scoring table differs from its training table (Vesal's lumbar discs) keeps both."""
    from dataclasses import replace

    from inference.training.datasets import VESAL_EVAL_TABLE, VESAL_TABLE

    s = replace(phantom_sample(4, size=96), table=VESAL_TABLE, eval_table=VESAL_EVAL_TABLE)
    export_cache([s, phantom_sample(5, size=96)], tmp_path)
    back = load_cache(tmp_path)
    assert np.array_equal(back[0].table, VESAL_TABLE) and np.array_equal(back[0].eval_table, VESAL_EVAL_TABLE)
    assert back[1].eval_table is None


def test_shipped_recipes_parse() -> None:
    cfg, text = load_recipe(REPO / "inference" / "training" / "recipes" / "light.toml")
    assert cfg.variant == "light" and cfg.input_size % 64 == 0 and "spider" in text
    gpu, _ = load_recipe(REPO / "bench" / "gpu_light.toml")
    assert gpu.max_minutes is not None and gpu.max_minutes <= 7 and {s.kind for s in gpu.sources} == {"phantom", "cache"}
    cpu, _ = load_recipe(REPO / "bench" / "cpu_light.toml")
    assert cpu.input_size == 256 and [(s.kind, s.path) for s in cpu.sources] == [(s.kind, s.path) for s in gpu.sources]
    with pytest.raises(ValueError, match="unknown"):
        config_from_dict({"train": {"bogus": 1}})
    with pytest.raises(ValueError, match="kind"):
        config_from_dict({"sources": [{"kind": "dicom"}]})


def test_training_input_matches_inference_normalisation() -> None:
    from inference.preprocess import normalise

    img = phantom_sample(6, size=128).image
    canvas, _, fit = fit_to_canvas(img, None, 128)
    assert np.allclose(normalise_1ch(canvas), normalise(canvas)[0])
    assert fit.offset == (0, 0) and NORM_MEAN == 0.2703814 and NORM_STD == 0.24898738


def test_lr_schedule_warms_up_and_anneals() -> None:
    assert lr_factor(0.0, 0.05) < 0.05 and lr_factor(0.05, 0.05) == pytest.approx(1.0)
    assert lr_factor(1.0, 0.05) == pytest.approx(0.02)
