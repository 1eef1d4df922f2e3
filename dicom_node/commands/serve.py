"""``bianque serve --config FILE``: run the node in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._common import add_config_argument, load_or_report


def quiet_pydicom_value_checks() -> None:
    """Turn off pydicom's read-time value checks in the node's process.

    In pydicom's default mode ("warn") every UID made while decoding (pynetdicom builds several for
    each DIMSE message, and about 1,800 for each A-ASSOCIATE-RQ a storescu sends) is matched against a
    regular expression only to emit a warning; that was half of the node's CPU per association. The
    node never relies on those warnings: it checks what it uses itself (dicom_node.uids, headers).
    """
    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        print("bianque: not starting: fix the configuration above (check it with: bianque check-config FILE)")
        return 1
    from ..logs import configure_logging
    from ..node import Node

    configure_logging(config.logging)
    quiet_pydicom_value_checks()
    import structlog

    log = structlog.get_logger("dicom_node.serve")
    stop = threading.Event()

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received; finishing the work in hand", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    try:
        node = Node(config)
        node.start()
    except OSError as exc:
        log.error("cannot start the node", error=str(exc),
                  hint="is the port in use, or below 1024 without the right capability? is the spool writable?")
        print(f"bianque: cannot start the node: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. the analysis pipeline cannot load its model
        log.error("cannot start the node", error=f"{type(exc).__name__}: {exc}",
                  hint="check [model] weights/device and [processing]; or set processing.enabled = false")
        print(f"bianque: cannot start the node: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        while not stop.wait(1.0):
            pass
    finally:
        node.stop()
    return 0
