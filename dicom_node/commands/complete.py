"""``bianque complete UID``: treat a series (or every series of a study) as complete now.

Works whether or not the node is running: the completion is written to the spool index, and the
running node picks the study job up within ``completion.poll_interval_s``.
"""

from __future__ import annotations

import argparse

from ._common import add_config_argument, load_or_report


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("uid", help="Series Instance UID or Study Instance UID")


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    from ..index import SpoolIndex
    from ..node import force_complete
    from ..uids import InvalidUID, validate_uid

    try:
        uid = validate_uid(args.uid)
    except InvalidUID as exc:
        print(f"bianque: {exc}")
        return 1
    index = SpoolIndex(config.index_path)
    try:
        completed = force_complete(index, uid)
    except KeyError as exc:
        print(f"bianque: {exc.args[0]}")
        return 1
    finally:
        index.close()
    if completed:
        print(f"marked complete: {len(completed)} series; the node processes the study within "
              f"{config.completion.poll_interval_s:g} s")
    else:
        print("already complete; nothing to do")
    return 0
