"""Checks shared by the sr tests: dciodvfy with a reviewed warning allow-list, SR walking helpers."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from peers import require_tool
from pydicom import Dataset

# Every dciodvfy warning we accept, with the reason it is acceptable (reviewed 2026-11).
DCIODVFY_ALLOWED_WARNINGS: tuple[tuple[str, str], ...] = (
    (r"^Warning - Unrecognized defined term <99BIANQUE> for value 1 of attribute <Coding Scheme Designator>$",
     "our private coding scheme (ΔSI, DHI, HDR, grade group, status, method, reference deviation): no "
     "standard code exists; '99' designators are local per PS3.3 §8.2 and the scheme is declared in the "
     "Coding Scheme Identification Sequence (dicom-outputs.md §3.3)"),
    (r"^Warning - Value dubious for this VR - \(0x0008,0x0090\) PN Referring Physician's Name .* Retired Person "
     r"Name form$",
     "single-component name copied unchanged from the source instance (vendor sample); patient/study modules "
     "must be copied as they are"),
    (r"^Warning - Value dubious for this VR - \(0x0010,0x0010\) PN Patient's Name .* Retired Person Name form$",
     "same: the source's patient name is copied unchanged"),
)


@dataclass(frozen=True)
class DciodvfyReport:
    iod: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    unexpected_warnings: tuple[str, ...]
    text: str


def dciodvfy(path: Path) -> DciodvfyReport:
    """Run dciodvfy (it exits 0 even with errors) and classify its stderr lines."""
    exe = require_tool("dciodvfy")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    text = proc.stderr + proc.stdout
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = tuple(line for line in lines if line.startswith("Error"))
    warnings = tuple(line for line in lines if line.startswith("Warning"))
    unexpected = tuple(w for w in warnings if not any(re.match(p, w) for p, _ in DCIODVFY_ALLOWED_WARNINGS))
    # the IOD name line; warnings about the file as a whole (e.g. DICOMDIR needs) may come before it
    iod = next((line for line in lines if not line.startswith(("Warning", "Error"))), "")
    return DciodvfyReport(iod, errors, warnings, unexpected, text)


def coding_scheme_designators(ds: Dataset) -> set[str]:
    """Every Coding Scheme Designator used anywhere in a dataset (recursive)."""
    found: set[str] = set()
    for elem in ds.iterall():
        if elem.keyword == "CodingSchemeDesignator" and elem.value:
            found.add(str(elem.value))
    return found


def declared_schemes(ds: Dataset) -> set[str]:
    return {str(item.CodingSchemeDesignator) for item in ds.get("CodingSchemeIdentificationSequence", [])}
