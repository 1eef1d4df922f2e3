"""Age and sex from DICOM header strings."""

from __future__ import annotations

import pytest

from quantitation import demographics_from_header


@pytest.mark.parametrize(
    ("age", "sex", "birth", "study", "expect_sex", "expect_age"),
    [
        ("045Y", "M", None, None, "M", 45.0),
        ("006M", "F", None, None, "F", 0.5),
        ("052W", "O", None, None, None, 52 * 7 / 365.2425),
        ("", "", "19700615", "20250614", None, 54.0),
        (None, "f", "19700615", "20250615", "F", 55.0),
        ("garbage", "M", "19700615", "20250615", "M", 55.0),
        (None, None, "1970", "20250615", None, None),
        (None, None, "19700615", "19600101", None, None),
        (None, "X", None, None, None, None),
    ],
)
def test_demographics(age, sex, birth, study, expect_sex, expect_age) -> None:
    s, a = demographics_from_header(age, sex, birth, study)
    assert s == expect_sex
    if expect_age is None:
        assert a is None
    else:
        assert a == pytest.approx(expect_age)


def test_wrong_type_raises() -> None:
    with pytest.raises(ValueError):
        demographics_from_header(45, "M", None, None)  # type: ignore[arg-type]
