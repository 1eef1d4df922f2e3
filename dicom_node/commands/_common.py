"""Helpers shared by the admin commands: the --config option and loading it with a clear error."""

from __future__ import annotations

import argparse
import os
import sys

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
