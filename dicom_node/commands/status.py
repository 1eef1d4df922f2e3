"""``bianque status``: recent jobs with their states, and their sends."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from ._common import add_config_argument, load_or_report


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--limit", type=int, default=20, help="how many recent jobs (default 20)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _time(value: float) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    if not config.index_path.exists():
        print(f"no spool index at {config.index_path} yet (the node has not received anything)")
        return 0
    from ..index import SpoolIndex

    index = SpoolIndex(config.index_path)
    try:
        jobs = index.jobs(limit=args.limit)
        if args.json:
            rows = []
            for job in jobs:
                row = dict(job.__dict__)
                row["sends"] = [dict(s.__dict__) for s in index.sends(job.id)]
                rows.append(row)
            print(json.dumps(rows, indent=2))
            return 0
        if not jobs:
            print("no jobs yet")
            return 0
        print(f"{'JOB':>5} {'KIND':5} {'VER':>3} {'STATE':10} {'STAGE':8} {'TRIES':>5} {'UPDATED (UTC)':19}  STUDY / LAST ERROR")
        for job in jobs:
            print(f"{job.id:>5} {job.kind:5} {job.version:>3} {job.state:10} {job.stage:8} {job.attempt:>5} "
                  f"{_time(job.updated_at):19}  {job.study_uid or '-'}")
            for send in index.sends(job.id):
                retry = f", next try {_time(send.next_attempt_at)}" if send.state == "pending" and send.attempt else ""
                print(f"{'':>5}   -> {send.destination}: {send.state} after {send.attempt} attempt(s), "
                      f"last status {send.last_status or '-'}{retry}")
            if job.last_error:
                print(f"{'':>5}   error: {job.last_error[:300]}")
    finally:
        index.close()
    return 0
