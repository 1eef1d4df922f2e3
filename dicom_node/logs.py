"""structlog set-up: JSON lines for log shippers or readable console lines, one level switch.

Events carry AE titles, addresses, UIDs, job ids and stages, never patient names, IDs, birth dates
or accession numbers.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from .config import LoggingConfig


def configure_logging(settings: LoggingConfig, stream: TextIO | None = None) -> None:
    level = getattr(logging, settings.level)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if settings.format == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    # pynetdicom logs through the stdlib; keep it quiet unless debugging.
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
