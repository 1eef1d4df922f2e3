"""``bianque check-config FILE``: validate a configuration and print the effective settings."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import ConfigError, dump_toml, load_config


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="TOML (or .json) configuration file")
    parser.add_argument("--format", choices=("toml", "json"), default="toml",
                        help="how to print the effective configuration (default: toml)")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"configuration {exc.source} is invalid ({len(exc.errors)} error(s)):", file=sys.stderr)
        for key, message in exc.errors:
            print(f"  {key}: {message}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        print(f"# effective configuration of {args.file} (defaults and BIANQUE__* overrides applied)")
        print(dump_toml(config), end="")
    return 0
