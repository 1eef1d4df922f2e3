"""Fixtures for the sr_templates tests (inputs are built in sr_inputs.py, checks in sr_checks.py)."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from io import BytesIO
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


def _shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (the repo's sibling ../shared/data must be present)")
    return path


@pytest.fixture
def real_mr_small() -> Dataset:
    """Real single-frame MR header (64 x 64, NEMA sample) with a Chinese patient name put in."""
    ds = pydicom.dcmread(_shared_file("dicom_mr_samples", "pylibjpeg-data", "LittleEndianExplicit", "MR_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = CHINESE_NAME
    return ds


@pytest.fixture(scope="session")
def _philips_bytes() -> bytes:
    return gzip.decompress(_shared_file("dicom_mr_samples", "nibabel", "philips_mprage.dcm.gz").read_bytes())


@pytest.fixture
def real_philips_enhanced(_philips_bytes: bytes) -> Dataset:
    """Real Philips Enhanced MR header (176 frames, 256 x 256; per-frame geometry; pixels all zero)."""
    return pydicom.dcmread(BytesIO(_philips_bytes))


@pytest.fixture
def enhanced_factory() -> Callable[..., Dataset]:
    return make_enhanced_mr
