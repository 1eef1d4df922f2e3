"""Ahead-of-serving compilation of an inference forward pass with TorchInductor (``torch.compile``).

On CPU, Inductor with ``freezing`` treats the weights as constants: convolution weights are reordered
once into oneDNN's blocked layout (eager mode reorders them on every call), BatchNorm-folded biases and
ReLUs are fused into the convolutions, the bf16 casts of the weights are done once, and the element-wise
tail (upsampling, concatenation, window attention, LayerNorm, GELU) becomes fused C++ loops. For the full
BianqueNet this removes about a quarter of the CPU time of the eager ``bf16-head`` forward pass.

Costs: the first call compiles (C++ code through the system compiler, ``g++``): minutes on a loaded
2-core machine for the full network, tens of seconds when Inductor's on-disk cache
(``$TORCHINDUCTOR_CACHE_DIR``, default ``/tmp/torchinductor_<user>``) already holds the kernels. The
compiled graph is specialised to one input shape: :class:`CompiledForward` therefore runs one slice per
call, so a batch of any size reuses the same graph.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import torch

COMPILE_OPTIONS = {"freezing": True}


class CompilerUnavailableError(RuntimeError):
    """No C++ compiler for TorchInductor's CPU kernels on this machine."""


def cpu_compiler_available() -> bool:
    """True when a C++ compiler that TorchInductor can use is on the PATH."""
    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


class CompiledForward:
    """``forward`` compiled by TorchInductor (weights frozen), applied to one slice at a time.

    The weights read by ``forward`` are baked in at the first call: build a new ``CompiledForward``
    after changing them.
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], device_type: str = "cpu"):
        if device_type == "cpu" and not cpu_compiler_available():
            raise CompilerUnavailableError(
                "torch.compile on CPU needs a C++ compiler (g++); install one or use an eager precision mode"
            )
        self._compiled = torch.compile(forward, dynamic=False, options=dict(COMPILE_OPTIONS))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return self._compiled(x)
        return torch.cat([self._compiled(x[i:i + 1]) for i in range(x.shape[0])])
