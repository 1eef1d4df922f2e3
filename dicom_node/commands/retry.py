"""``bianque retry JOB``: re-queue a failed job (failed sends are retried, else processing reruns)."""

from __future__ import annotations

import argparse

from ._common import add_config_argument, load_or_report


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("job", type=int, help="job id (see: bianque status)")


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    from ..index import SpoolIndex

    index = SpoolIndex(config.index_path)
    try:
        job = index.retry_job(args.job)
    except (KeyError, ValueError) as exc:
        print(f"bianque: {exc.args[0]}")
        return 1
    finally:
        index.close()
    print(f"job {job.id} re-queued (state {job.state}); the running node picks it up within "
          f"{config.completion.poll_interval_s:g} s")
    return 0
