"""``bianque select STUDY_DIR``: dry-run of series selection, every series with its reason."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dicom_node.commands._common import studies_from_paths
from dicom_node.selection import (
    SelectionRules,
    center_index,
    rules_from_config,
    select_series,
    series_slices,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="STUDY_DIR", help="DICOM files or folders")
    parser.add_argument("--config", type=Path, default=None, help="node configuration (its [selection] rules)")


def load_rules(config_path: Path | None) -> SelectionRules:
    """The [selection] rules of a configuration file, or the defaults."""
    if config_path is None:
        return SelectionRules()
    from dicom_node.config import load_config  # the node's schema owns the file format

    return rules_from_config(load_config(config_path).selection)


def run(args: argparse.Namespace) -> int:
    console = Console()
    rules = load_rules(args.config)
    studies = studies_from_paths(args.paths, console)
    if studies is None:
        return 1
    status = 0
    for study_uid, study_headers in studies.items():
        selection = select_series(study_headers, rules)
        table = Table(title=f"Study {study_uid}", show_lines=False)
        for column in ("#", "description", "plane", "weighting", "slices", "decision", "reason"):
            table.add_column(column, overflow="fold")
        for d in selection.decisions:
            verdict = "[bold green]CHOSEN[/]" if d.chosen else ("[green]candidate[/]" if d.accepted else "[red]refused[/]")
            table.add_row(
                "" if d.series_number is None else str(d.series_number),
                d.description,
                d.plane,
                d.weighting,
                str(d.n_slices),
                verdict,
                "; ".join(d.reasons),
            )
        console.print(table)
        if selection.chosen is None:
            console.print(f"[red]No series selected:[/] {selection.reason}")
            status = 3
            continue
        console.print(f"[green]Selected:[/] {selection.reason}")
        chosen = [h for h in study_headers if h.series_uid == selection.chosen.series_uid]
        try:
            slices = series_slices(chosen)
        except ValueError as exc:
            console.print(f"[red]cannot order the slices:[/] {exc}")
            status = 3
            continue
        mid = slices[center_index(slices)]
        frame = "" if mid.frame_index is None else f", frame {mid.frame_index + 1}"
        console.print(
            f"Mid-sagittal slice ({rules.mid_slice} mode{' uses the model; centre shown' if rules.mid_slice == 'best' else ''}):"
            f" {mid.path}{frame} (SOP {mid.sop_instance_uid}, {mid.position_mm:+.1f} mm along the normal,"
            f" {center_index(slices) + 1} of {len(slices)})"
        )
    return status
