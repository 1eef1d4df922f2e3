"""The shipped light weights load and still reach the Dice written in their evaluation JSON (within 0.02)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.training.model_card import CARD_SETS, evaluate_card_sets

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "inference" / "weights" / "bianque-light.pt"
EVAL_JSON = REPO / "inference" / "weights" / "bianque-light.eval.json"
CARD = REPO / "inference" / "weights" / "MODEL_CARD.md"
DATA = REPO.parent / "shared" / "data"


def test_shipped_weights_reach_model_card_dice() -> None:
    from inference.weights_io import load_weights

    assert WEIGHTS.is_file() and EVAL_JSON.is_file() and CARD.is_file(), "shipped weights, eval JSON and model card must exist"
    assert WEIGHTS.stat().st_size <= 25e6
    loaded = load_weights(WEIGHTS)
    assert loaded.variant == "light" and loaded.input_size % 64 == 0
    if not DATA.is_dir():
        pytest.fail(f"shared data missing: {DATA}")
    torch.set_num_threads(2)
    recorded = {r["dataset"]: r for r in json.loads(EVAL_JSON.read_text())["reports"]}
    assert set(recorded) == set(CARD_SETS)
    reports, _ = evaluate_card_sets(WEIGHTS, DATA)
    for rep in reports:
        want = {c["name"]: c["dice"] for c in recorded[rep.dataset]["classes"]}
        got = {c.name: c.dice for c in rep.classes}
        assert set(got) == set(want), rep.dataset
        for name, value in want.items():
            assert abs(got[name] - value) <= 0.02, (rep.dataset, name, got[name], value)
        # the card's Markdown table carries the same numbers
        assert f"{rep.summary['all labelled classes']:.3f}" in CARD.read_text()


def test_shipped_weights_let_the_lower_discs_of_real_slices_be_measured() -> None:
    """Segmentation -> post-processing -> quantitation on the held-out real mid-sagittal slices: the sacrum
    must not swallow the soft tissue in front of the spine (weights trained without the sacrum constraint
    called a third of each real slice S1, and no L4/L5 or L5/S1 disc could be measured)."""
    from inference.postprocess import postprocess
    from inference.training.labels import DISCS
    from inference.training.eval_sets import load_eval_set
    from inference.training.evaluation import predict_probabilities, score_samples
    from inference.weights_io import load_weights
    from quantitation import quantify_slice

    if not DATA.is_dir():
        pytest.fail(f"shared data missing: {DATA}")
    torch.set_num_threads(2)
    loaded = load_weights(WEIGHTS)
    model = loaded.model.eval()
    measured: dict[str, int] = {}
    dh_errors: list[float] = []
    slices = 0
    spider: dict[str, list] = {"samples": [], "sacrum": [], "off": []}
    for name in ("spider", "ivd", "vb"):
        for sample in (s for s in load_eval_set(name, DATA) if s.mid):
            with torch.inference_mode():
                probs = predict_probabilities(model, sample.image, loaded.input_size, spacing=sample.spacing_mm)
            labels = postprocess(probs).label_map
            if name == "spider":
                spider["samples"].append(sample)
                spider["sacrum"].append(labels)
                spider["off"].append(postprocess(probs, level_assignment="off").label_map)
            assert (labels == 12).mean() < 0.02, f"{name} {sample.subject}: S1 covers {(labels == 12).mean():.0%}"
            result = quantify_slice(labels, sample.image, sample.spacing_mm or (1.0, 1.0))
            slices += 1
            for disc in result.discs:
                measured[disc.level] = measured.get(disc.level, 0) + (disc.dh_mm is not None)
            if name != "vb":  # the annotator's discs with the network's vertebrae: the DH the labels give
                annotated = labels.copy()
                annotated[np.isin(annotated, DISCS)] = 0
                for c in DISCS:
                    annotated[sample.target(c)] = c
                reference = quantify_slice(annotated, sample.image, sample.spacing_mm or (1.0, 1.0))
                dh_errors += [(a.dh_mm - b.dh_mm) / b.dh_mm for a, b in zip(result.discs, reference.discs)
                              if a.dh_mm is not None and b.dh_mm is not None]
    assert slices == 9
    # disc heights against the annotators' discs (README: 28 discs, median -3.6 %, mean |error| 12 %)
    errors = np.abs(np.array(dh_errors))
    assert len(errors) >= 26 and float(np.mean(errors)) <= 0.15 and int((errors <= 0.10).sum()) >= 16, dh_errors
    # 44 of 45 when shipped (run 4): L5/S1 on 8 of 9 (run 3: 5 of 9, run 2: none)
    assert measured["L4/L5"] == slices and measured["L5/S1"] >= 8 and sum(measured.values()) >= 43, measured
    # levels counted from the sacrum (the node's default post-processing) repair SPIDER subject 162's
    # shifted levels: held-out SPIDER bodies 0.959 / discs 0.879 with it, 0.888 / 0.846 without (shipped file)
    with_count = score_samples(spider["sacrum"], spider["samples"], "spider").summary
    without = score_samples(spider["off"], spider["samples"], "spider").summary
    assert with_count["vertebral bodies"] >= 0.95 and with_count["discs"] >= 0.875, with_count
    assert with_count["vertebral bodies"] - without["vertebral bodies"] >= 0.05, (with_count, without)
    # level-agnostic (bench/results/spider_peer_unet.md: 0.890 shipped, 0.882 for an independent U-Net)
    assert abs(with_count["discs (any level)"] - 0.890) <= 0.02, with_count


def test_shipped_weights_on_vesal_lumbar_discs_match_the_model_card() -> None:
    """Vesal labels discs without levels; its five lowest discs score as one structure (model card: 0.716,
    Vesal's outlines run about a pixel outside the disc at 256 px, so the network's discs cover 0.5-0.6 of
    the reference area)."""
    from inference.training.eval_sets import load_eval_set
    from inference.training.evaluation import evaluate_model
    from inference.weights_io import load_weights

    if not DATA.is_dir():
        pytest.fail(f"shared data missing: {DATA}")
    torch.set_num_threads(2)
    loaded = load_weights(WEIGHTS)
    samples = load_eval_set("vesal", DATA)
    assert sorted(s.subject for s in samples) == ["15", "19", "3", "8"]
    report = evaluate_model(loaded.model, samples, loaded.input_size, "vesal", postprocessing="sacrum")
    assert report.classes == ()
    assert abs(report.summary["discs (any level)"] - 0.716) <= 0.02, report.summary


def test_delta_si_from_the_node_segmentation_tracks_the_radiologists_grades() -> None:
    """End to end on the 30 SPIDER central slices (bench/spider_delta_si_network.py): ΔSI from the network's
    own disc and CSF masks against the Pfirrmann grades. Measured -0.71 (all) / -0.81 (held out); -0.52 when
    the CSF reference took the main peak of a sac that is mostly cord."""
    import importlib.util
    import sys

    from scipy.stats import spearmanr

    if not DATA.is_dir():
        pytest.fail(f"shared data missing: {DATA}")
    spec = importlib.util.spec_from_file_location("spider_delta_si_network", REPO / "bench" / "spider_delta_si_network.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    torch.set_num_threads(2)
    rows = bench.measure(DATA / "spider", str(WEIGHTS))
    measured = [r for r in rows if r.dsi_network is not None]
    assert len(rows) == 150 and len(measured) >= 145
    rho_all = spearmanr([r.dsi_network for r in measured], [r.pfirrmann for r in measured])[0]
    held = [r for r in measured if r.held_out]
    rho_held = spearmanr([r.dsi_network for r in held], [r.pfirrmann for r in held])[0]
    assert rho_all <= -0.6 and rho_held <= -0.7, (rho_all, rho_held)
    # the grade-2 mean is the number the CSF reference inflated (179 instead of 48)
    grade2 = [r.dsi_network for r in measured if r.pfirrmann == 2]
    assert 30 <= float(np.mean(grade2)) <= 70, np.mean(grade2)


def test_delta_si_from_the_network_masks_agrees_with_the_annotated_masks() -> None:
    """ΔSI's outline registration seen from outside (quantitation/outline_registration.py): on the 20 Vesal
    slices the network's disc masks and Vesal's annotated ones (a different convention: its outlines run about
    a pixel outside the disc) give the same raw peak difference when each outline is registered to the image.
    Discs matched by overlap (more than half of the network's disc inside an annotated one). Measured: 61
    discs; registered 100 % within 3 grey levels (median 0.25, largest 1.7); read on the masks as drawn 85 %
    (median 0.70, largest 7.3)."""
    import cv2
    from PIL import Image

    from inference.postprocess import postprocess
    from inference.training.evaluation import predict_probabilities
    from inference.weights_io import load_weights
    from quantitation import signal_intensity as sig
    from quantitation.labels import DISC_CLASS
    from quantitation.masks import crop
    from quantitation.outline_registration import REGISTRATION_REACH_PX

    root = DATA / "vesal_sag_t2"
    if not root.is_dir():
        pytest.fail(f"shared data missing: {root}")
    torch.set_num_threads(2)
    loaded = load_weights(WEIGHTS)
    model = loaded.model.float().eval()
    margin = REGISTRATION_REACH_PX + 3
    registered, as_drawn = [], []
    for f in sorted((root / "masks").glob("*.npy")):
        img = np.array(Image.open(root / "images" / f"{f.stem}.png").convert("L"))
        with torch.inference_mode():
            labels = postprocess(predict_probabilities(model, img, loaded.input_size)).label_map
        n, comps = cv2.connectedComponents((np.load(f) == 1).astype(np.uint8), connectivity=8)
        for i in range(1, n):
            annotated = comps == i
            if annotated.sum() < 50:
                continue
            for cls in DISC_CLASS.values():
                net = labels == cls
                if net.sum() < 30 or (net & annotated).sum() <= 0.5 * net.sum():
                    continue
                box = crop(annotated | net, margin).box
                pair = [(img[box], m[box]) for m in (annotated, net)]
                reg = [sig.registered_disc_peaks(i, m).difference for i, m in pair]
                raw = [sig.disc_peaks(i[m], sig.disc_weights(m)).difference for i, m in pair]
                registered.append(abs(reg[0] - reg[1]))
                as_drawn.append(abs(raw[0] - raw[1]))
    registered_a, as_drawn_a = np.array(registered), np.array(as_drawn)
    assert registered_a.size >= 55, registered_a.size
    assert float(np.mean(registered_a <= 3.0)) >= 0.95, np.sort(registered_a)[-5:]
    assert float(np.median(registered_a)) <= 0.4
    assert float(np.mean(registered_a <= 3.0)) > float(np.mean(as_drawn_a <= 3.0))
