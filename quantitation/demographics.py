"""Age and sex from DICOM header strings (PatientAge, PatientSex, PatientBirthDate, StudyDate).

Pure: takes the strings, returns normalised values; unparsable values become None.
"""

from __future__ import annotations

import datetime as _dt
import re

_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"D": 1.0 / 365.2425, "W": 7.0 / 365.2425, "M": 1.0 / 12.0, "Y": 1.0}


def _check(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a DICOM string or None, got {type(value).__name__}")
    return value.strip() or None


def _parse_da(value: str | None) -> _dt.date | None:
    if value is None:
        return None
    digits = value.replace(".", "").replace("-", "").strip()  # tolerate ACR-NEMA style YYYY.MM.DD
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def age_from_dicom_as(patient_age: str | None) -> float | None:
    """PatientAge (AS, e.g. '045Y', '006M', '012W', '003D') -> age in years, or None."""
    value = _check("PatientAge", patient_age)
    if value is None:
        return None
    m = _AGE_RE.match(value)
    if m is None:
        return None
    return int(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()]


def age_from_dates(birth_date: str | None, study_date: str | None) -> float | None:
    """Completed years between PatientBirthDate and StudyDate (DA 'YYYYMMDD'), or None."""
    born = _parse_da(_check("PatientBirthDate", birth_date))
    seen = _parse_da(_check("StudyDate", study_date))
    if born is None or seen is None or seen < born:
        return None
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return float(years)


def sex_from_dicom_cs(patient_sex: str | None) -> str | None:
    """PatientSex (CS: 'F', 'M', 'O' or empty) -> 'F', 'M' or None."""
    value = _check("PatientSex", patient_sex)
    if value is None:
        return None
    value = value.upper()
    return value if value in ("F", "M") else None


def demographics_from_header(
    patient_age: str | None,
    patient_sex: str | None,
    birth_date: str | None,
    study_date: str | None,
) -> tuple[str | None, float | None]:
    """(sex 'F'/'M'/None, age in years or None) from DICOM header strings.

    PatientAge wins when it parses; otherwise the age is computed from the birth and study dates.
    """
    sex = sex_from_dicom_cs(patient_sex)
    age = age_from_dicom_as(patient_age)
    if age is None:
        age = age_from_dates(birth_date, study_date)
    return sex, age
