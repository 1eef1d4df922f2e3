"""Precision modes: bf16-fusion and the compiled modes are selectable, gated, and agree with fp32 (light network,
random weights); the split head keeps the head's dataflow."""

from __future__ import annotations

import pytest
import torch

from inference import build_model
from inference.cpu_compile import cpu_compiler_available
from inference.fuse import fold_batchnorm
from inference.split_head import head_forward
from inference.precision import (
    AGREEMENT_GATE,
    PRECISION_MODES,
    PrecisionWrapper,
    auto_candidates,
    calibration_batch,
    choose_precision,
    cpu_has_bf16_units,
)

torch.set_num_threads(1)
CPU = torch.device("cpu")

needs_compiled_cpu = pytest.mark.skipif(
    not (cpu_has_bf16_units() and cpu_compiler_available()),
    reason="compiled bf16 modes need CPU bf16 units and a C++ compiler",
)


def test_modes_are_selectable_and_ordered() -> None:
    assert {"fp32", "bf16", "bf16-head", "bf16-fusion", "bf16-compiled", "bf16-head-compiled",
            "bf16-fusion-compiled", "fp16", "fp16-head", "fp16-compiled", "fp16-scaled",
            "fp16-scaled-compiled"} <= set(PRECISION_MODES)
    with pytest.raises(ValueError, match="unknown precision mode 'bf16-tail'"):
        PrecisionWrapper(build_model("light"), "bf16-tail")
    full = auto_candidates("bianquenet", CPU)
    light = auto_candidates("light", CPU)
    assert all(m in PRECISION_MODES for m in full + light)
    assert not any(m.endswith("-compiled") for m in light)  # the light network is never compiled
    # CUDA: fp16 first (same tensor-core speed as bf16, 3 more mantissa bits); never fp16 on a CPU
    assert auto_candidates("bianquenet", torch.device("cuda")) == ("fp16-scaled", "bf16", "bf16-head")
    assert not any(m.startswith("fp16") for m in full + light)
    if cpu_has_bf16_units() and cpu_compiler_available():
        # eager bf16 first (no compile), compiled bf16-head before its slower eager twin
        assert full == ("bf16", "bf16-fusion-compiled", "bf16-head")
    elif not cpu_has_bf16_units():
        assert full == light == ()


def test_split_head_is_the_heads_own_dataflow() -> None:
    torch.manual_seed(3)
    net = build_model("light").eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        feats = net.backbone(x)
        assert torch.equal(head_forward(net.classifier, feats, bf16=False, aspp_fp32=False), net.classifier(feats))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            own = net.classifier(feats)
        assert torch.equal(head_forward(net.classifier, feats, bf16=True, aspp_fp32=False), own)
        fusion = head_forward(net.classifier, feats, bf16=True, aspp_fp32=True)
        ref = net.classifier(feats)
    assert fusion.dtype == torch.float32 and fusion.shape == ref.shape
    assert not torch.equal(fusion, own)  # the fp32 ASPP changes the rounding
    assert (fusion - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.skipif(not cpu_has_bf16_units(), reason="bf16 autocast on CPU is emulated without bf16 units")
def test_bf16_fusion_passes_the_gate_on_the_light_network_with_random_weights() -> None:
    torch.manual_seed(0)
    net = fold_batchnorm(build_model("light").eval(), inplace=True)
    choice = choose_precision(net, CPU, 128, ("bf16-fusion",))
    assert choice.mode == "bf16-fusion", choice.reason
    assert choice.agreement["bf16-fusion"] >= AGREEMENT_GATE
    assert isinstance(choice.runner, PrecisionWrapper) and choice.runner.mode == "bf16-fusion"


@pytest.mark.slow  # compiles the light network: ~20-45 s with a warm Inductor cache, ~2 min cold on 2 loaded cores
@needs_compiled_cpu
def test_compiled_bf16_fusion_passes_the_gate_on_the_light_network_with_random_weights() -> None:
    torch.manual_seed(0)
    net = fold_batchnorm(build_model("light").eval(), inplace=True)
    x = torch.from_numpy(calibration_batch(128))
    with torch.inference_mode():
        ref = net(x)
    choice = choose_precision(net, CPU, 128, ("bf16-fusion-compiled",))
    assert choice.skipped == {}
    assert choice.mode == "bf16-fusion-compiled", choice.reason
    assert choice.agreement["bf16-fusion-compiled"] >= AGREEMENT_GATE
    runner = choice.runner
    assert isinstance(runner, PrecisionWrapper) and runner.mode == "bf16-fusion-compiled"
    # the calibrated runner serves a batch of any size slice by slice, fp32 logits at input resolution
    with torch.inference_mode():
        out = runner(torch.cat([x, x[:1]]).contiguous(memory_format=torch.channels_last))
    assert out.dtype == torch.float32 and out.shape == (3, ref.shape[1], 128, 128)
    agree = (out[:2].argmax(1) == ref.argmax(1)).float().mean().item()
    assert agree >= AGREEMENT_GATE
    assert torch.equal(out[0], out[2])  # same slice, same graph, same numbers
    # fp32 mode is still the plain forward pass, bit for bit
    with torch.inference_mode():
        assert torch.equal(PrecisionWrapper(net.to(memory_format=torch.contiguous_format), "fp32")(x), ref)


def test_a_compiled_mode_that_cannot_run_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import inference.cpu_compile as cc

    monkeypatch.setattr(cc.shutil, "which", lambda name: None)  # a machine without g++/c++/clang++
    assert not cpu_compiler_available()
    torch.manual_seed(0)
    net = build_model("light").eval()
    choice = choose_precision(net, CPU, 64, ("bf16-fusion-compiled",))
    assert choice.mode == "fp32" and choice.runner is None
    assert "C++ compiler" in choice.skipped["bf16-fusion-compiled"]
    assert "skipped" in choice.reason
    assert not any(m.endswith("-compiled") for m in auto_candidates("bianquenet", CPU))


def test_fp16_passes_the_gate_on_the_light_network_with_random_weights() -> None:
    torch.manual_seed(0)
    net = fold_batchnorm(build_model("light").eval(), inplace=True)
    choice = choose_precision(net, CPU, 128, ("fp16",))
    assert choice.mode == "fp16", choice.reason
    assert choice.agreement["fp16"] >= AGREEMENT_GATE and choice.skipped == {}
    assert choice.runner is not None and choice.runner.overflows == 0


def _hot_light_network() -> torch.nn.Module:
    """A light network whose deep features leave fp16's range (every backbone layer amplifies)."""
    torch.manual_seed(0)
    net = build_model("light").eval()
    with torch.no_grad():
        for p in net.backbone.parameters():
            p.mul_(3.0)
    return net


def test_fp16_overflow_is_rerun_in_fp32_and_never_chosen() -> None:
    """Activations beyond fp16's range (65504) give inf/NaN logits: the wrapper reruns the batch in fp32 and
    counts it; the start-up gate does not choose a mode that overflowed on its calibration slices."""
    net = _hot_light_network()
    x = torch.from_numpy(calibration_batch(64))
    with torch.inference_mode():
        ref = PrecisionWrapper(net, "fp32")(x)
        assert torch.isfinite(ref).all() and ref.abs().max() > 65504  # fp32 copes
        raw = PrecisionWrapper(net, "fp16")._forward(x)
        assert not torch.isfinite(raw).all()  # the network really overflows in fp16
        wrapper = PrecisionWrapper(net, "fp16")
        out = wrapper(x)
    assert wrapper.overflows == 1
    assert torch.equal(out, ref)  # the fp32 rerun, bit for bit
    choice = choose_precision(net, CPU, 64, ("fp16",))
    assert choice.mode == "fp32" and choice.runner is None
    assert "fp16 overflow on 2 of 2 calibration slices" in choice.skipped["fp16"]


def test_compiled_fp16_overflow_is_counted_by_the_wrapper_the_caller_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled graph is the bare forward pass: the overflow check and fp32 rerun run once, outside it, and
    are counted where the Segmenter reads them (compilation replaced by a plain call to stay fast)."""
    import inference.precision as precision
    from model_factory import PlainCall

    monkeypatch.setattr(precision, "CompiledForward", PlainCall)
    net = _hot_light_network()
    x = torch.from_numpy(calibration_batch(64))
    wrapper = PrecisionWrapper(net, "fp16-compiled")
    with torch.inference_mode():
        out = wrapper(x)
        ref = PrecisionWrapper(net, "fp32")(x)
    assert wrapper.overflows == 1
    assert torch.equal(out, ref)
