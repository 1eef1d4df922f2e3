"""``bianque echo DESTINATION``: C-ECHO a configured destination and report the result."""

from __future__ import annotations

import argparse

from ._common import add_config_argument, load_or_report


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("destination", help="name of a [[destinations]] entry")


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    try:
        destination = config.destination(args.destination)
    except KeyError as exc:
        print(f"bianque: {exc.args[0]}")
        return 1
    from ..scu import echo

    outcome = echo(config, destination)
    print(("OK: " if outcome.ok else "FAILED: ") + outcome.message)
    return 0 if outcome.ok else 1
