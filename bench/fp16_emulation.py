"""Label agreement of reduced-precision BianqueNet with fp32, emulated on a CPU (no GPU needed).

    python bench/fp16_emulation.py            # full network, random weights (torch.manual_seed(0)), 512 px

Tensor cores under autocast multiply reduced-precision inputs and weights and accumulate in fp32; the results
are stored in the reduced type. This script reproduces that on the CPU: every convolution's and linear layer's
inputs and weights are rounded to the type (the final 1x1 classifier stays fp32, as in ``BianqueHead``), and
the outputs of every convolution, linear layer, BatchNorm, ReLU and bottleneck block are rounded, with fp32
arithmetic in between (CPU fp16 convolutions are far too slow to run the full network at 512 px here).
Compares, on the two calibration phantoms of ``inference.precision``: whole-network bf16, plain fp16 and
fp16 with range scaling (``inference.range_scaling``, at the default headroom and at 4x). Results:
bench/results/inference.md, "fp16 with range scaling".
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference.model import BianqueNet, Bottleneck, build_model  # noqa: E402
from inference.precision import calibration_batch  # noqa: E402
from inference.range_scaling import NO_SCALING, plan_range_scaling, range_scaled_copy, scaled_logits  # noqa: E402


def emulated(net: BianqueNet, dtype: torch.dtype) -> BianqueNet:
    """A copy of ``net`` whose layers round to ``dtype`` as described in the module docstring."""
    out = copy.deepcopy(net)

    def rnd(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype).float()

    keep_fp32 = out.classifier.classifier[-1]
    for m in out.modules():
        if m is keep_fp32:
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data = rnd(m.weight.data)
            m.register_forward_pre_hook(lambda _m, inp: tuple(rnd(i) if torch.is_tensor(i) else i for i in inp))
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU, Bottleneck)):
            m.register_forward_hook(lambda _m, _i, o: rnd(o))
    return out


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = build_model("bianquenet").eval()
    x = torch.from_numpy(calibration_batch(512))
    with torch.inference_mode():
        ref = scaled_logits(net, NO_SCALING, x).argmax(1)
        rows = [("bf16 whole network", torch.bfloat16, NO_SCALING), ("fp16 whole network", torch.float16, NO_SCALING)]
        for headroom in (16.0, 4.0):
            plan = plan_range_scaling(net, x, headroom=headroom)
            rows.append((f"fp16-scaled, headroom {headroom:g}: {plan.describe()}", torch.float16, plan))
        for name, dtype, plan in rows:
            t = time.perf_counter()
            logits = scaled_logits(emulated(range_scaled_copy(net, plan), dtype), plan, x)
            agree = [float((logits.argmax(1)[i] == ref[i]).float().mean()) * 100 for i in range(x.shape[0])]
            print(f"| {name} | {'yes' if bool(torch.isfinite(logits).all()) else 'no'} | "
                  + " / ".join(f"{a:.2f} %" for a in agree) + f" | {time.perf_counter() - t:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
