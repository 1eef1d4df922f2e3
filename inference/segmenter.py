"""The warm segmentation service: load weights once, segment batches of DICOM slices.

Device ``"auto"`` picks CUDA when available, else CPU (never fails without CUDA). Precision ``"auto"``
(default): the first candidate of :func:`inference.precision.auto_candidates` whose label maps agree with
fp32 on >= 99.5 % of two synthetic phantom slices, checked once at start-up with the loaded weights
(:func:`inference.precision.choose_precision`, result in ``precision_choice``); otherwise fp32. On CUDA:
``"fp16-scaled"`` (whole network under float16 autocast, channels_last; activations that would leave fp16's
range on the calibration slices are computed power-of-two scaled, :mod:`inference.range_scaling`; a batch
whose logits still overflow is rerun in fp32), then ``"bf16"`` (the same with bfloat16), then ``"bf16-head"`` (backbone fp32/TF32,
decoder + fusion head in bf16). On CPUs with bf16 units: ``"bf16"``, then for the full network
``"bf16-fusion-compiled"`` (bf16 head with the ASPP in fp32, compiled by TorchInductor at start-up: needs a
C++ compiler, tens of seconds; set ``TORCHINDUCTOR_CACHE_DIR`` to keep the compiled code across restarts),
then ``"bf16-head"``. Other CPUs: fp32. An explicit ``precision`` skips the check.
Test-time augmentation (``tta``, :mod:`inference.tta`): ``"off"`` (default) or a policy name of
``inference.tta.TTA_POLICIES`` / a sequence of ``TTAView``; the softmax probabilities of a few rescaled
and gamma-changed views are averaged (no flips). Each view costs one more forward pass.
Decoding is argmax by default (no unassigned pixels); ``decoding="threshold"`` selects the original
per-channel p > 0.5 rule. ``level_assignment="sacrum"`` (default) re-assigns vertebra/disc levels by
counting discs from the sacrum when the evidence is clear, ``"off"`` keeps the network's levels. See
:mod:`inference.postprocess`. BatchNorm is folded into the convolutions
(``fold_bn=True``, inference only; same outputs to ~1e-5). On CPU the fusion conv mixes the x8 and x4
upsampled maps at their own resolution (``factored_fusion``, default: on for CPU, where it was measured
6-10 % faster for the full network; off for CUDA until measured there; :mod:`inference.upsampled_conv`; same
outputs up to summation order, about a quarter fewer FLOPs for the full network).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from pydicom.dataset import Dataset

from inference.fuse import fold_batchnorm
from inference.postprocess import DECODINGS, LEVEL_ASSIGNMENTS, MORPHOLOGIES, postprocess
from inference.precision import (
    PRECISION_MODES,
    PrecisionChoice,
    PrecisionWrapper,
    auto_candidates,
    choose_precision,
)
from inference.preprocess import PreparedSlice, prepare_slice
from inference.tta import TTAView, predict_with_views, resolve_policy
from inference.variants import INPUT_SIZE_MULTIPLE
from inference.weights_io import LoadedModel, load_weights

PRECISIONS = ("auto", *PRECISION_MODES)


def package_version() -> str:
    try:
        return metadata.version("bianque-node")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    variant: str
    weights_sha256: str
    input_size: int


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    label_map: np.ndarray  # (Rows, Columns) uint8 on the source DICOM grid
    label_map_model: np.ndarray  # (S, S) uint8 on the model grid (canonical orientation)
    probabilities_model: np.ndarray  # (C, S, S) float16 softmax probabilities on the model grid
    prepared: PreparedSlice
    postprocess_warnings: tuple[str, ...]
    model: ModelIdentity
    decoding: str

    def probabilities_source(self) -> np.ndarray:
        """(C, Rows, Columns) float32 probabilities resampled bilinearly onto the source grid."""
        return self.prepared.transform.probabilities_to_source(self.probabilities_model)


def _pick_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA device is available; use device='auto'")
    return dev


class Segmenter:
    """BianqueNet loaded once and kept warm. Not thread-safe: use one per worker thread."""

    def __init__(
        self,
        weights: str | Path | LoadedModel = "default",
        device: str | torch.device = "auto",
        cpu_threads: int | None = None,
        decoding: str = "argmax",
        input_size: int | None = None,
        precision: str = "auto",
        expected_variant: str | None = None,
        fold_bn: bool = True,
        morphology: str = "fixed",
        tta: str | Sequence[TTAView] | None = None,
        level_assignment: str = "sacrum",
        factored_fusion: bool | None = None,
    ) -> None:
        if decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {decoding!r}; use one of {DECODINGS}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
        self.device = _pick_device(device)
        if cpu_threads is not None and self.device.type == "cpu":
            torch.set_num_threads(max(1, int(cpu_threads)))
        loaded = weights if isinstance(weights, LoadedModel) else load_weights(weights, "cpu", expected_variant)
        self.loaded = loaded
        self.decoding = decoding
        if morphology not in MORPHOLOGIES:
            raise ValueError(f"unknown morphology {morphology!r}; use one of {MORPHOLOGIES}")
        self.morphology = morphology
        if level_assignment not in LEVEL_ASSIGNMENTS:
            raise ValueError(f"unknown level assignment {level_assignment!r}; use one of {LEVEL_ASSIGNMENTS}")
        self.level_assignment = level_assignment
        self.tta_views = resolve_policy(tta)
        self.input_size = int(input_size or loaded.input_size)
        if self.input_size % INPUT_SIZE_MULTIPLE:
            raise ValueError(f"input_size must be a multiple of {INPUT_SIZE_MULTIPLE}, got {self.input_size}")
        own = not isinstance(weights, LoadedModel)  # we loaded it: fold in place, no second copy
        model = fold_batchnorm(loaded.model, inplace=own) if fold_bn else loaded.model.eval()
        model = model.to(self.device)
        if factored_fusion is None:  # measured faster on CPU; on CUDA not measured yet (bench/gpu_inference.py)
            factored_fusion = self.device.type == "cpu"
        if model.classifier.factored_fusion != factored_fusion:  # inference.upsampled_conv: same logits, fewer FLOPs
            if model is loaded.model and not own:
                model = copy.deepcopy(model)  # never switch the caller's module, on or off
            model.classifier.factored_fusion = factored_fusion
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if precision == "auto":
            self.precision_choice = choose_precision(
                model, self.device, self.input_size, auto_candidates(loaded.variant, self.device)
            )
        else:
            self.precision_choice = PrecisionChoice(precision, {}, f"{precision}: requested")
        self.precision = self.precision_choice.mode
        self.channels_last = self.precision != "fp32"  # every reduced-precision mode runs channels_last
        model = model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        self.model = model
        # the calibrated wrapper when auto chose it (a compiled mode must not compile twice)
        self.runner = (self.precision_choice.runner or PrecisionWrapper(model, self.precision)).eval()
        self.identity = ModelIdentity(
            name="BianqueNet",
            version=package_version(),
            variant=loaded.variant,
            weights_sha256=loaded.sha256,
            input_size=self.input_size,
        )

    @property
    def fp16_overflows(self) -> int:
        """Forward passes whose fp16 logits were not finite and were rerun in fp32, since start-up."""
        return self.runner.overflows

    @property
    def range_scaling(self) -> str | None:
        """How ``fp16-scaled`` keeps the activations in fp16's range (None in other modes)."""
        plan = self.runner.range_plan
        return plan.describe() if plan is not None else None

    def prepare(self, ds: Dataset, frame_index: int | None = None) -> PreparedSlice:
        return prepare_slice(ds, frame_index, self.input_size)

    @torch.inference_mode()
    def predict_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) float32 network inputs -> (N, C, S, S) float32 softmax probabilities."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.runner(x)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def predict_tta(self, images8: Sequence[np.ndarray], inputs: Sequence[np.ndarray]) -> np.ndarray:
        """(N, C, S, S) probabilities of prepared slices, averaged over the test-time views (``tta``);
        with ``tta="off"`` exactly :meth:`predict_probabilities` of ``inputs``."""
        if len(self.tta_views) == 1 and self.tta_views[0].identity:
            return self.predict_probabilities(np.stack(inputs))
        return predict_with_views(self.predict_probabilities, images8, self.tta_views, inputs)

    def segment(
        self,
        items: Sequence[Dataset | PreparedSlice],
        frame_indices: Sequence[int | None] | None = None,
        batch_size: int = 8,
        decoding: str | None = None,
    ) -> list[SegmentationResult]:
        """Segment several slices (datasets or already prepared slices), ``batch_size`` per forward pass.

        Raises :class:`inference.preprocess.PreprocessingError` for a slice that cannot be prepared; call
        :meth:`prepare` per slice first to isolate bad slices.
        """
        decoding = decoding or self.decoding
        if decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {decoding!r}; use one of {DECODINGS}")
        if frame_indices is not None and len(frame_indices) != len(items):
            raise ValueError("frame_indices must have one entry per item")
        prepared: list[PreparedSlice] = []
        for i, item in enumerate(items):
            if isinstance(item, PreparedSlice):
                if item.input_size != self.input_size:
                    raise ValueError(
                        f"slice prepared for input size {item.input_size}, the model needs {self.input_size}"
                    )
                prepared.append(item)
            else:
                prepared.append(self.prepare(item, None if frame_indices is None else frame_indices[i]))
        results: list[SegmentationResult] = []
        for start in range(0, len(prepared), max(1, batch_size)):
            chunk = prepared[start:start + batch_size]
            probs = self.predict_tta([p.model_image_8bit for p in chunk], [p.model_input for p in chunk])
            for prep, prob in zip(chunk, probs):
                post = postprocess(prob, decoding, prep.valid_mask, self.morphology, self.level_assignment)
                results.append(
                    SegmentationResult(
                        label_map=prep.transform.labels_to_source(post.label_map),
                        label_map_model=post.label_map,
                        probabilities_model=prob.astype(np.float16),
                        prepared=prep,
                        postprocess_warnings=post.warnings,
                        model=self.identity,
                        decoding=decoding,
                    )
                )
        return results
