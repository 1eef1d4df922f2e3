"""Ahead-of-serving compilation of an inference forward pass with TorchInductor (``torch.compile``).

On CPU, Inductor with ``freezing`` treats the weights as constants: convolution weights are reordered
once into oneDNN's blocked layout (eager mode reorders them on every call), BatchNorm-folded biases and
ReLUs are fused into the convolutions, the bf16 casts of the weights are done once, and the element-wise
tail (upsampling, concatenation, window attention, LayerNorm, GELU) becomes fused C++ loops. For the full
BianqueNet on one thread this removes about a fifth of the time of the eager ``bf16-head`` forward pass
(2.09 vs 2.63 s); on two threads of a loaded machine about half (fewer parallel regions waiting for a
descheduled thread). See bench/results/inference.md.

Costs: the first call compiles (C++ code through the system compiler, ``g++``): minutes on a loaded
2-core machine for the full network, tens of seconds when Inductor's on-disk cache
(``$TORCHINDUCTOR_CACHE_DIR``, default ``/tmp/torchinductor_<user>``) already holds the kernels. The
compiled graph is specialised to one input shape: :class:`CompiledForward` therefore runs one slice per
call, so a batch of any size reuses the same graph.
"""

from __future__ import annotations

import shutil
import torch
from torch import nn

# Inductor reads ``freezing`` from its global config when it compiles (``torch.compile(options=...)`` does
# not reach that check), so every call that may compile runs inside ``config.patch``: nothing global changes.
INDUCTOR_CONFIG = {"freezing": True}


class CompilerUnavailableError(RuntimeError):
    """No C++ compiler for TorchInductor's CPU kernels on this machine."""


def cpu_compiler_available() -> bool:
    """True when a C++ compiler that TorchInductor can use is on the PATH."""
    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


class CompiledForward:
    """``module`` compiled by TorchInductor (weights frozen), applied to one slice at a time.

    The module itself is compiled (not a bound method): Inductor freezes only the parameters of a compiled
    module. Its weights are baked in at the first call: build a new ``CompiledForward`` after changing them.
    Not an ``nn.Module``, so holding one does not add the module's weights to a state dict twice.
    """

    def __init__(self, module: nn.Module, device_type: str = "cpu"):
        if device_type == "cpu" and not cpu_compiler_available():
            raise CompilerUnavailableError(
                "torch.compile on CPU needs a C++ compiler (g++); install one or use an eager precision mode"
            )
        self.module = module.eval()
        self._compiled = torch.compile(self.module, dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(INDUCTOR_CONFIG):
            if x.shape[0] == 1:
                return self._compiled(x)
            return torch.cat([self._compiled(x[i:i + 1]) for i in range(x.shape[0])])
