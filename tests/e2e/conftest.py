"""Fixtures for the end-to-end tests (the helpers live in e2e_helpers.py, put on sys.path here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))  # appended: tests/conftest.py must stay the module named "conftest"

from e2e_helpers import plumbing_weights  # noqa: E402


@pytest.fixture(scope="session")
def plumbing_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return plumbing_weights(tmp_path_factory.mktemp("weights") / "plumbing-light.pt")
