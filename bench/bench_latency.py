"""Latency benchmark: last instance sent -> SR stored in Orthanc, minus the quiet period.

The node runs as ``bianque serve`` (its own process, ``cpu_threads`` = 2) with Orthanc as its only
destination. A phantom study (sagittal T2 9 slices 512x512, sagittal T1 5, axial T2 5) is sent by DCMTK
``storescu`` (TCP_NODELAY=1); the clock starts when storescu exits (every instance acknowledged) and
stops when Orthanc's REST API lists the SR in the study. The first study also pays the lazy model
load; the next studies show the warm node. Peak RSS of the node (VmHWM) is read at the end.

Weights: the shipped light weights when present, otherwise a randomly initialised network of the same
variant (same compute; the numbers are then said to come from random weights). ``--variant
bianquenet`` measures the full model (random weights unless ``--weights`` names a file).

Usage: ``.venv/bin/python bench/bench_latency.py [--variant light|bianquenet] [--studies 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the project first: tests/inference must not shadow the inference package
sys.path.append(str(REPO / "tests"))  # peers.OrthancPeer: Orthanc on free loopback ports
sys.path.insert(1, str(Path(__file__).resolve().parent))
from bench_common import machine, wait_port  # noqa: E402

SHIPPED_LIGHT = REPO / "inference" / "weights" / "bianque-light.pt"
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}


@dataclass(frozen=True)
class Run:
    study: int
    latency_s: float  # minus the quiet period
    raw_s: float
    cold: bool


def random_weights(variant: str, path: Path) -> Path:
    import torch

    from inference import build_model, save_weights

    torch.manual_seed(0)
    save_weights(path, build_model(variant), model_card={"purpose": "benchmark only: random weights"})
    return path


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(variant: str, weights: Path, studies: int, quiet_s: float, threads: int, root: Path) -> tuple[list[Run], float]:
    from peers import OrthancPeer, free_port, peer_env

    from dicom_node.config import dump_toml
    from inference.synthetic.study import write_study

    orthanc = OrthancPeer(root / "orthanc")
    orthanc.start()
    node_port = free_port()
    config = {
        "network": {"ae_title": "BIANQUE", "bind_address": "127.0.0.1", "port": node_port},
        "allowed_senders": [{"ae_title": "STORESCU"}, {"ae_title": "ORTHANC"}],
        "destinations": [{"name": "orthanc", "ae_title": orthanc.aet, "host": "127.0.0.1",
                          "port": orthanc.dicom_port, "retry": {"initial_delay_s": 0.2, "max_delay_s": 1.0}}],
        "spool": {"directory": str(root / "spool")},
        "completion": {"quiet_period_s": quiet_s, "poll_interval_s": 0.2},
        "model": {"weights": str(weights), "device": "cpu", "cpu_threads": threads},
        "processing": {"enabled": True},
        "logging": {"format": "json", "level": "INFO"},
    }
    (root / "node.toml").write_text(dump_toml(config))
    log = open(root / "node.log", "wb")  # noqa: SIM115
    bianque = Path(sys.executable).with_name("bianque")
    node = subprocess.Popen([str(bianque), "serve", "--config", str(root / "node.toml")], stdout=log,
                            stderr=subprocess.STDOUT)
    runs: list[Run] = []
    try:
        wait_port(node_port, 60)
        for number in range(studies):
            manifest = write_study(root / f"study{number}", seed=100 + number)
            result = subprocess.run(
                ["/usr/bin/storescu", "-aet", "STORESCU", "-aec", "BIANQUE", "127.0.0.1", str(node_port),
                 *map(str, manifest.all_files)],
                env=peer_env(), capture_output=True, timeout=120,
            )
            sent = time.monotonic()
            if result.returncode != 0:
                raise RuntimeError(f"storescu failed: {result.stderr.decode(errors='replace')[-400:]}")
            deadline = sent + 600
            while time.monotonic() < deadline:
                classes = {i["MainDicomTags"].get("SOPClassUID") for i in orthanc.study_instances(manifest.study_uid)}
                if classes & SR_CLASSES:
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError(f"no SR in Orthanc after 600 s; node log: {(root / 'node.log').read_text()[-2000:]}")
            raw = time.monotonic() - sent
            runs.append(Run(number + 1, raw - quiet_s, raw, cold=number == 0))
            print(f"{variant} study {number + 1}: {raw - quiet_s:.2f} s after the quiet period "
                  f"({raw:.2f} s raw){' (includes model load)' if number == 0 else ''}", flush=True)
        peak = vm_hwm_mib(node.pid)
        if os.environ.get("BENCH_KEEP_LOG"):
            shutil.copy(root / "node.log", os.environ["BENCH_KEEP_LOG"])
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
        orthanc.stop(graceful=False)
    return runs, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("light", "bianquenet"), default="light")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--studies", type=int, default=3)
    parser.add_argument("--quiet-period", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bianque-bench-latency-"))
    header = machine()
    try:
        weights = args.weights
        origin = "given weights file"
        if weights is None and args.variant == "light" and SHIPPED_LIGHT.is_file():
            weights, origin = SHIPPED_LIGHT, "shipped light weights"
        if weights is None:
            weights = random_weights(args.variant, root / f"random-{args.variant}.pt")
            origin = "randomly initialised weights (same compute as trained ones)"
        runs, peak = measure(args.variant, weights, args.studies, args.quiet_period, args.threads, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    warm = [r.latency_s for r in runs if not r.cold]
    target = 3.0 if args.variant == "light" else 10.0
    lines = [
        f"## {args.variant} model ({origin})",
        "",
        f"Machine: {header}. Node `cpu_threads` = {args.threads}, quiet period {args.quiet_period:g} s "
        "(subtracted), phantom study of 19 instances (sagittal T2 9 x 512x512).",
        "",
        "| study | latency after quiet period (s) | raw (s) | note |",
        "|---:|---:|---:|---|",
        *[f"| {r.study} | {r.latency_s:.2f} | {r.raw_s:.2f} | {'cold: includes loading the model' if r.cold else 'warm'} |"
          for r in runs],
        "",
        (f"Warm median {sorted(warm)[len(warm) // 2]:.2f} s; target <= {target:g} s: "
         f"{'met' if warm and sorted(warm)[len(warm) // 2] <= target else 'NOT met'}." if warm else ""),
        f"Peak RSS of the node process (VmHWM): {peak:.0f} MiB.",
        "",
    ]
    report("\n".join(lines), args.out)
    return 0


def report(text: str, out: Path | None) -> None:
    """Print the result and append it to ``out`` (a Markdown file), if given."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
