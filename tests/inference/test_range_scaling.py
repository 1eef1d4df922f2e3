"""fp16 range scaling: the scaled network computes the same function, keeps the part that left fp16's range
inside it, and lets fp16 pass the gate where plain fp16 overflows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dicom_factory import canonical_pattern, make_mr, source_iop
from model_factory import PlainCall, deep_hot_light_network, random_shifts

import inference.precision as precision
from inference import build_model
from inference.fuse import fold_batchnorm
from inference.precision import AGREEMENT_GATE, PrecisionWrapper, calibration_batch, choose_precision
from inference.range_scaling import (
    FP16_MAX,
    HEADROOM,
    activation_peaks,
    plan_range_scaling,
    range_scaled_copy,
    scaled_logits,
)
from inference.segmenter import Segmenter
from inference.weights_io import save_weights

torch.set_num_threads(1)
CPU = torch.device("cpu")


def _full_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return random_shifts(build_model("bianquenet").eval())


@pytest.mark.parametrize("folded", [False, True])
def test_the_scaled_network_computes_the_same_logits(folded: bool) -> None:
    net = _full_network()
    if folded:  # what the Segmenter runs: BatchNorm folded into convolution biases
        net = fold_batchnorm(net, inplace=True)
    x = torch.from_numpy(calibration_batch(64))
    plan = plan_range_scaling(net, x)
    assert plan.active and plan.exponent < 0
    scaled = range_scaled_copy(net, plan)
    assert scaled is not net
    with torch.inference_mode():
        ref = net.classifier(net.backbone(x))
        out = scaled_logits(scaled, plan, x)
    # powers of two only move exponents: the same numbers up to summation-order noise
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_the_plan_scales_exactly_the_part_that_leaves_fp16_range() -> None:
    net = _full_network()
    x = torch.from_numpy(calibration_batch(64))
    peaks = activation_peaks(net, x)
    plan = plan_range_scaling(net, x)
    limit = FP16_MAX / HEADROOM
    assert plan.start == f"backbone.layer3.{plan.scaled_from}"
    assert peaks["backbone.layer4"] > FP16_MAX  # plain fp16 cannot hold the full network's deep features
    assert peaks[plan.start] > limit >= max(peaks[f"backbone.layer3.{i}"] for i in range(plan.scaled_from))
    assert plan.peak * plan.scale <= limit < plan.peak * plan.scale * 2  # the smallest exponent that fits
    assert plan.outside_peak < FP16_MAX
    # measured on the scaled network as it runs: every activation of the scaled part is within the limit
    scaled = range_scaled_copy(net, plan)
    seen: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: seen.append(float(o.abs().max())))
             for m in (*scaled.backbone.layer3[plan.scaled_from:], scaled.backbone.layer4, scaled.classifier.psp)]
    with torch.inference_mode():
        for i in range(x.shape[0]):
            scaled_logits(scaled, plan, x[i:i + 1])
    for h in hooks:
        h.remove()
    assert len(seen) > 10 and max(seen) <= limit


def test_fp16_scaled_passes_the_gate_where_plain_fp16_overflows() -> None:
    net = deep_hot_light_network()
    x = torch.from_numpy(calibration_batch(128))
    with torch.inference_mode():
        assert not torch.isfinite(PrecisionWrapper(net, "fp16")._forward(x)).all()
    choice = choose_precision(net, CPU, 128, ("fp16", "fp16-scaled"))
    assert choice.mode == "fp16-scaled", choice.reason
    assert "fp16 overflow on 2 of 2 calibration slices" in choice.skipped["fp16"]
    assert choice.agreement["fp16-scaled"] >= AGREEMENT_GATE
    runner = choice.runner
    assert runner is not None and runner.overflows == 0
    assert runner.range_plan is not None and runner.range_plan.start == "backbone.layer4"
    assert "fp16 range scaling from backbone.layer4 to the ASPP by 2^-" in runner.range_plan.describe()


def test_a_network_within_range_is_plain_fp16_without_a_copy() -> None:
    torch.manual_seed(0)
    net = random_shifts(build_model("light").eval())
    x = torch.from_numpy(calibration_batch(64))
    plan = plan_range_scaling(net, x)
    assert not plan.active and plan.exponent == 0 and range_scaled_copy(net, plan) is net
    assert "no fp16 range scaling needed" in plan.describe()
    with torch.inference_mode():
        assert torch.equal(PrecisionWrapper(net, "fp16-scaled")(x), PrecisionWrapper(net, "fp16")(x))


def test_compiled_fp16_scaled_compiles_the_scaled_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "CompiledForward", PlainCall)
    net = deep_hot_light_network()
    x = torch.from_numpy(calibration_batch(64))
    compiled = PrecisionWrapper(net, "fp16-scaled-compiled")
    assert compiled.range_plan is not None and compiled.range_plan.active
    with torch.inference_mode():
        assert torch.equal(compiled(x), PrecisionWrapper(net, "fp16-scaled")(x))
    assert compiled.overflows == 0


def test_the_segmenter_runs_fp16_scaled_without_fp32_reruns(tmp_path: Path) -> None:
    path = tmp_path / "deep-hot.pt"
    save_weights(path, deep_hot_light_network(), "light", 128)
    ds = make_mr(canonical_pattern()[0], source_iop(False, False, False))
    seg = Segmenter(path, device="cpu", precision="fp16-scaled")
    assert seg.range_scaling is not None and seg.range_scaling.startswith("fp16 range scaling from backbone.layer4")
    got = seg.segment([ds])[0]
    assert seg.fp16_overflows == 0
    ref = Segmenter(path, device="cpu", precision="fp32")
    assert ref.range_scaling is None
    assert float(np.mean(got.label_map == ref.segment([ds])[0].label_map)) >= AGREEMENT_GATE
