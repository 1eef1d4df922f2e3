"""Segmenter on CPU with tiny random / planted light models (fast)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_factory import canonical_pattern, make_mr, reorient, source_iop  # noqa: E402
from model_factory import planted_weights  # noqa: E402

from inference import build_model  # noqa: E402
from inference.segmenter import ModelIdentity, SegmentationResult, Segmenter, package_version  # noqa: E402
from inference.weights_io import WeightsError, file_sha256, save_weights  # noqa: E402

torch.set_num_threads(1)


def _dataset(layout=(True, False, True), spacing=(0.6, 0.9)):
    img, _ = canonical_pattern()
    t, fr, fc = layout
    return make_mr(reorient(img, t, fr, fc), source_iop(t, fr, fc), spacing=spacing[::-1] if t else spacing)


def test_segment_batch_with_random_light_model(tmp_path: Path) -> None:
    path = tmp_path / "light.pt"
    save_weights(path, build_model("light"), "light", 128)
    seg = Segmenter(path, device="auto" if not torch.cuda.is_available() else "cpu", cpu_threads=1)
    assert seg.device.type == "cpu" and seg.input_size == 128
    datasets = [_dataset(), _dataset((False, True, False)), _dataset((False, False, False), (0.8, 0.8))]
    results = seg.segment(datasets, batch_size=2)
    assert len(results) == 3 and all(isinstance(r, SegmentationResult) for r in results)
    for ds, r in zip(datasets, results):
        assert r.label_map.shape == (ds.Rows, ds.Columns) and r.label_map.dtype == np.uint8
        assert r.label_map_model.shape == (128, 128)
        assert r.probabilities_model.shape == (14, 128, 128) and r.probabilities_model.dtype == np.float16
        assert np.allclose(r.probabilities_model.astype(np.float32).sum(0), 1, atol=1e-2)
        assert r.probabilities_source().shape == (14, ds.Rows, ds.Columns)
        assert r.model == ModelIdentity("BianqueNet", package_version(), "light", file_sha256(path), 128)
        assert r.decoding == "argmax"
        assert isinstance(r.postprocess_warnings, tuple)
    # batching does not change results
    single = seg.segment([datasets[1]])[0]
    assert np.array_equal(single.label_map, results[1].label_map)
    # prepared slices are accepted as well
    again = seg.segment([seg.prepare(datasets[0])])[0]
    assert np.array_equal(again.label_map, results[0].label_map)


def test_factored_fusion_is_on_by_default_and_changes_no_label(tmp_path: Path) -> None:
    """On CPU the Segmenter runs the factored fusion conv (inference.upsampled_conv) unless told not to; the
    probabilities agree with the plain fusion to float32 rounding and the label maps are identical. A
    LoadedModel handed in is not switched."""
    from inference.weights_io import load_weights

    torch.manual_seed(3)
    path = tmp_path / "light.pt"
    save_weights(path, build_model("light"), "light", 128)
    datasets = [_dataset(), _dataset((False, True, False))]
    factored = Segmenter(path, device="cpu", precision="fp32")
    plain = Segmenter(path, device="cpu", precision="fp32", factored_fusion=False)
    assert factored.model.classifier.factored_fusion and not plain.model.classifier.factored_fusion
    for a, b in zip(factored.segment(datasets), plain.segment(datasets), strict=True):
        assert np.array_equal(a.label_map, b.label_map)
        assert np.abs(a.probabilities_model.astype(np.float32) - b.probabilities_model.astype(np.float32)).max() < 2e-3
    loaded = load_weights(path, "cpu")
    seg = Segmenter(loaded, device="cpu", precision="fp32", fold_bn=False)
    assert seg.model.classifier.factored_fusion and not loaded.model.classifier.factored_fusion
    loaded.model.classifier.factored_fusion = True  # nor switched off
    seg = Segmenter(loaded, device="cpu", precision="fp32", fold_bn=False, factored_fusion=False)
    assert not seg.model.classifier.factored_fusion and loaded.model.classifier.factored_fusion


def test_planted_model_labels_the_whole_image_and_decoding_is_selectable(tmp_path: Path) -> None:
    # CSF most probable everywhere (p ~ 0.37 < 0.5): argmax labels every image pixel CSF, threshold none
    bias = [0.0] * 14
    bias[1], bias[2] = 2.0, 1.5
    path = planted_weights(tmp_path, bias)
    ds = _dataset()
    seg = Segmenter(path, device="cpu")
    r = seg.segment([ds])[0]
    assert (r.label_map == 1).all()  # whole source grid, orientation undone, padding dropped
    prep = r.prepared
    assert (r.label_map_model[prep.valid_mask] == 1).all() and (r.label_map_model[~prep.valid_mask] == 0).all()
    assert any("structures not found" in w for w in r.postprocess_warnings)
    rt = seg.segment([ds], decoding="threshold")[0]
    assert (rt.label_map == 0).all() and rt.decoding == "threshold"
    assert (Segmenter(path, device="cpu", decoding="threshold").segment([ds])[0].label_map == 0).all()


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        Segmenter(tmp_path / "missing.pt")
    path = tmp_path / "light.pt"
    save_weights(path, build_model("light"), "light", 128)
    with pytest.raises(ValueError, match="unknown decoding"):
        Segmenter(path, decoding="vote")
    with pytest.raises(ValueError, match="unknown level assignment"):
        Segmenter(path, level_assignment="top-down")
    with pytest.raises(WeightsError, match="'bianquenet' network was requested"):
        Segmenter(path, expected_variant="bianquenet")
    seg = Segmenter(path, device="cpu")
    other = Segmenter(path, device="cpu", input_size=192)
    with pytest.raises(ValueError, match="input size 192"):
        seg.segment([other.prepare(_dataset())])
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            Segmenter(path, device="cuda")


@pytest.mark.parametrize("precision", ["bf16", "bf16-head"])
def test_bf16_modes_run_on_cpu_and_agree_with_fp32(tmp_path: Path, precision: str) -> None:
    # planted decisive model: logits differ by 1.0+ between classes, so bf16 rounding cannot flip labels
    bias = [float(i) * 0.5 for i in range(14)]
    path = planted_weights(tmp_path, bias)
    ds = _dataset()
    r32 = Segmenter(path, device="cpu", precision="fp32").segment([ds])[0]
    rbf = Segmenter(path, device="cpu", precision=precision).segment([ds])[0]
    assert np.array_equal(r32.label_map, rbf.label_map)
    assert np.allclose(r32.probabilities_model.astype(np.float32), rbf.probabilities_model.astype(np.float32),
                       atol=2e-2)


def test_shipped_light_weights_segment_a_phantom_slice() -> None:
    from inference.synthetic import PhantomOptions, generate_phantom
    from inference.weights_io import DEFAULT_WEIGHTS_PATH

    if not DEFAULT_WEIGHTS_PATH.is_file():
        pytest.skip(f"no shipped weights at {DEFAULT_WEIGHTS_PATH} (trained by inference/training)")
    ph = generate_phantom(seed=1234, options=PhantomOptions(rows=384, cols=320))
    pixels = np.clip(ph.image * 1000, 0, 65535).astype(np.uint16)
    ds = make_mr(pixels, [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], spacing=ph.pixel_spacing_mm, window=None)
    seg = Segmenter("default", device="cpu")
    assert seg.identity.variant == "light"
    r = seg.segment([ds])[0]
    dices = []
    for c in range(2, 13):
        a, b = r.label_map == c, ph.labels == c
        dices.append(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
    assert np.mean(dices) > 0.7, dices


def test_auto_precision_is_gated_on_label_agreement(tmp_path: Path) -> None:
    from inference.precision import calibration_batch, choose_precision, cpu_has_bf16_units

    # a decisive (planted) model passes the gate: bf16 when the CPU has bf16 units
    path = planted_weights(tmp_path, [float(i) * 0.5 for i in range(14)])
    seg = Segmenter(path, device="cpu")
    expected = "bf16" if cpu_has_bf16_units() else "fp32"
    assert seg.precision == expected == seg.precision_choice.mode
    if expected == "bf16":
        assert seg.precision_choice.agreement["bf16"] == 1.0
    # random weights with calibrated BatchNorm statistics: near-tied logits everywhere -> fp32 kept
    torch.manual_seed(0)
    model = build_model("light")
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(calibration_batch(128)))
    choice = choose_precision(model.eval(), torch.device("cpu"), 128, ("bf16", "bf16-head"))
    assert choice.mode == "fp32"
    assert set(choice.agreement) == {"bf16", "bf16-head"} and max(choice.agreement.values()) < 0.995
    assert Segmenter(path, device="cpu", precision="fp32").precision_choice.reason == "fp32: requested"


def test_fp16_overflow_is_counted_and_the_labels_are_those_of_fp32(tmp_path: Path) -> None:
    """A network whose features leave fp16's range: the Segmenter (explicit fp16) reruns the batch in fp32 and
    counts it, so the node can log it; its labels equal the fp32 Segmenter's."""
    torch.manual_seed(0)
    net = build_model("light")
    with torch.no_grad():
        for p in net.backbone.parameters():
            p.mul_(3.0)
    path = tmp_path / "hot.pt"
    save_weights(path, net, "light", 64)
    ds = _dataset()
    fp16 = Segmenter(path, device="cpu", precision="fp16")
    assert fp16.fp16_overflows == 0
    got = fp16.segment([ds])[0]
    assert fp16.fp16_overflows == 1
    ref = Segmenter(path, device="cpu", precision="fp32").segment([ds])[0]
    assert np.array_equal(got.label_map, ref.label_map)
