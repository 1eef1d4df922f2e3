"""The model card's post-processing table: one row per mode, the summary Dice of each card set."""

from __future__ import annotations

from inference.training.evaluation import ClassScore, EvalReport
from inference.training.model_card import postprocessing_table


def _report(dataset: str, discs: float, low: float) -> EvalReport:
    classes = (ClassScore("L1/L2", 3, discs, discs, 1), ClassScore("L1", 2, low, low, 1))
    return EvalReport(dataset, 1, classes, {"discs": discs, "vertebral bodies": low})


def test_table_has_one_row_per_mode_with_each_sets_summary() -> None:
    table = postprocessing_table({
        "none": [_report("phantom", 0.981, 0.975), _report("spider", 0.828, 0.5)],
        "sacrum": [_report("phantom", 0.982, 0.976), _report("spider", 0.876, 0.9)],
    })
    lines = table.splitlines()
    assert lines[0] == ("| post-processing | phantom discs | phantom vertebral bodies | spider discs | "
                        "spider vertebral bodies | phantom lowest class |")
    assert lines[2] == "| none | 0.981 | 0.975 | 0.828 | 0.500 | 0.975 |"
    assert lines[3] == "| sacrum | 0.982 | 0.976 | 0.876 | 0.900 | 0.976 |"
