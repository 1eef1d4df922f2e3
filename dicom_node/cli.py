"""The ``bianque`` command line: a thin dispatcher over one module per sub-command.

Each module in ``dicom_node.commands`` defines ``configure(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit status). Modules are imported only when their command runs, so
``bianque --help`` stays fast and a missing optional dependency breaks one command, not all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Keep in the order an admin meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": ("dicom_node.commands.check_config", "validate a configuration file and print the effective settings"),
    "serve": ("dicom_node.commands.serve", "run the DICOM node in the foreground until SIGTERM/SIGINT"),
    "echo": ("dicom_node.commands.echo", "C-ECHO a configured destination"),
    "status": ("dicom_node.commands.status", "list recent jobs and their states"),
    "complete": ("dicom_node.commands.complete", "force a series (or a whole study) to be treated as complete"),
    "retry": ("dicom_node.commands.retry", "re-queue a failed job"),
    "select": ("dicom_node.commands.select", "dry-run series selection on a study folder"),
    "analyze": ("dicom_node.commands.analyze", "run the pipeline offline on DICOM files or folders"),
    "demo": ("dicom_node.commands.demo", "end-to-end demo on a generated phantom study"),
    "train": ("dicom_node.commands.train", "train BianqueNet (full or light variant)"),
    "evaluate": ("dicom_node.commands.evaluate", "per-class Dice/IoU of a weights file on a labelled dataset"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bianque",
        description="bianque-node: a DICOM node that grades lumbar disc degeneration (BianqueNet).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        if argv and argv[0] not in {"-h", "--help"}:
            parser.print_usage(sys.stderr)
            print(f"bianque: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"bianque {name}", description=help_text)
    module.configure(sub)
    args = sub.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
