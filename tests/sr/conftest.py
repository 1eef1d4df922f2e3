"""Fixtures for the sr_templates tests (inputs are built in sr_inputs.py, checks in sr_checks.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

SR_TESTS_DIR = Path(__file__).resolve().parent
if str(SR_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(SR_TESTS_DIR))

from sr_inputs import (  # noqa: E402
    CHINESE_NAME,
    SHARED_DATA,
    draw_label_map,
    make_enhanced_mr,
    make_mr_slice,
    make_quantitation,
)

from quantitation.results import SliceQuantitation  # noqa: E402
from sr_templates import AlgorithmInfo  # noqa: E402


@pytest.fixture
def algorithm() -> AlgorithmInfo:
    return AlgorithmInfo(name="BianqueNet", version="1.2.0", variant="big_apex",
                         weights_sha256="ab" * 32)


@pytest.fixture
def label_map() -> np.ndarray:
    return draw_label_map()


@pytest.fixture
def quantitation() -> SliceQuantitation:
    return make_quantitation()


@pytest.fixture
def mr_slice() -> Dataset:
    return make_mr_slice()


@pytest.fixture
def mr_factory() -> Callable[..., Dataset]:
    return make_mr_slice


@pytest.fixture
def enhanced_mr() -> Dataset:
    """Real Enhanced MR sample (10 frames, 64 x 64) with a Chinese patient name put in."""
    path = SHARED_DATA / "dicom_mr_samples" / "pylibjpeg-data" / "LittleEndianExplicit" / "emri_small.dcm"
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (CI must provide ../shared/data)")
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = CHINESE_NAME
    ds.PatientID = "BQ-TEST-002"
    return ds


@pytest.fixture
def enhanced_factory() -> Callable[..., Dataset]:
    return make_enhanced_mr
