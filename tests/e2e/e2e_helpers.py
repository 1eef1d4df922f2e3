"""Helpers for the end-to-end tests: reading our SR back, weights for plumbing runs, Orthanc round trips."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_WEIGHTS = REPO_ROOT / "inference" / "weights" / "bianque-light.pt"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
SC_CLASSES = {"1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.4"}
TRACKING_IDENTIFIER = "112039"
HEIGHT = "121207"
DISC_LEVELS = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")


def _walk(items: Any) -> list[Dataset]:
    out: list[Dataset] = []
    for item in items or []:
        out.append(item)
        out.extend(_walk(item.get("ContentSequence")))
    return out


def _code(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeValue) if seq else ""


def measurement_groups(sr: Dataset) -> list[Dataset]:
    return [i for i in _walk(sr.get("ContentSequence")) if i.get("ValueType") == "CONTAINER" and _code(i) == "125007"]


def disc_heights_mm(sr: Dataset) -> dict[str, float]:
    """Disc level -> DH (mm) from the TID 1411 disc groups of our SR."""
    heights: dict[str, float] = {}
    for group in measurement_groups(sr):
        children = list(group.get("ContentSequence") or [])
        tracking = next((str(c.TextValue) for c in children if _code(c) == TRACKING_IDENTIFIER and "TextValue" in c), "")
        level = next((lvl for lvl in DISC_LEVELS if tracking == f"{lvl} disc"), None)
        if level is None:
            continue
        for child in children:
            if child.get("ValueType") == "NUM" and _code(child) == HEIGHT and child.get("MeasuredValueSequence"):
                unit = child.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue
                assert unit == "mm", unit
                heights[level] = float(child.MeasuredValueSequence[0].NumericValue)
    return heights


def read_bytes(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def plumbing_weights(path: Path, input_size: int | None = None) -> Path:
    """A light model whose output is CSF everywhere (random backbone, classifier bias on class 1):
    enough to exercise every stage, not to measure anything."""
    import torch

    from inference import build_model, save_weights

    torch.manual_seed(0)
    model = build_model("light")
    final = model.classifier.classifier[-1]
    with torch.no_grad():
        final.weight.zero_()
        final.bias.zero_()
        final.bias[1] = 10.0
    save_weights(path, model, input_size=input_size, model_card={"purpose": "end-to-end plumbing tests only"})
    return path
