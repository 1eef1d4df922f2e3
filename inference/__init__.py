"""Segmentation stage: BianqueNet network, weights files, DICOM preprocessing, inference, post-processing.

Public entry points (imported lazily so that ``import inference.classes`` does not load torch):
``build_model``, ``load_weights``, ``save_weights``, ``LoadedModel``, ``WeightsError``, ``VariantConfig``,
``prepare_slice``, ``Segmenter``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_model": "inference.model",
    "BianqueNet": "inference.model",
    "VariantConfig": "inference.variants",
    "get_variant": "inference.variants",
    "load_weights": "inference.weights_io",
    "save_weights": "inference.weights_io",
    "LoadedModel": "inference.weights_io",
    "WeightsError": "inference.weights_io",
    "DEFAULT_WEIGHTS_PATH": "inference.weights_io",
    "CLASS_NAMES": "inference.classes",
    "prepare_slice": "inference.preprocess",
    "PreparedSlice": "inference.preprocess",
    "SliceTransform": "inference.preprocess",
    "fold_batchnorm": "inference.fuse",
    "PrecisionWrapper": "inference.precision",
    "Segmenter": "inference.segmenter",
    "SegmentationResult": "inference.segmenter",
    "ModelIdentity": "inference.segmenter",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'inference' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
