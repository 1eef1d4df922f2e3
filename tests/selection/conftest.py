"""Selection tests write their studies with the shared ``dicom_factory.StudyWriter`` (tiny, valid MR series)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dicom_factory import StudyWriter


@pytest.fixture
def study_writer(tmp_path: Path) -> Callable[[], StudyWriter]:
    counter = iter(range(1000))
    return lambda: StudyWriter(tmp_path / f"study{next(counter)}")
