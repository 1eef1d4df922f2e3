"""Helpers shared by the admin commands: the --config option and loading it with a clear error."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..config import ConfigError, NodeConfig, load_config

DEFAULT_CONFIG = "/etc/bianque/bianque-node.toml"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c",
        default=os.environ.get("BIANQUE_CONFIG", DEFAULT_CONFIG),
        help=f"configuration file (default: $BIANQUE_CONFIG or {DEFAULT_CONFIG})",
    )


def load_or_report(path: str) -> NodeConfig | None:
    """Load the configuration; on error print every problem to stderr and return None."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"bianque: {exc}", file=sys.stderr)
        return None


def studies_from_paths(paths: list[Path], console: Any) -> dict[str, list[Any]] | None:
    """DICOM headers under ``paths`` grouped by study (``selection.group_by_study``); files that are not
    DICOM are listed as skipped on the rich ``console``; None (reported) when there is no DICOM file."""
    from ..selection import group_by_study, read_headers

    headers, unreadable = read_headers(paths)
    for line in unreadable:
        console.print(f"[yellow]skipped (not DICOM):[/] {line}")
    if not headers:
        console.print("[red]no DICOM files found[/]")
        return None
    return group_by_study(headers)
