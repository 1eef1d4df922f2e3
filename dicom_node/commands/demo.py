"""``bianque demo``: the whole round trip on a generated phantom study, on this machine, no PACS needed.

1. writes a phantom lumbar MR study (sagittal T2, sagittal T1, axial T2) into a work folder;
2. starts a small local C-STORE receiver standing in for the PACS;
3. starts the node with the example configuration (``config/bianque-node.example.toml``), its port,
   spool, senders and destination overridden to loopback values for the demo;
4. sends the study to the node by C-STORE, waits for the SEG, SR and report image to come back to
   the receiver, and prints the per-disc table and where every file is.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "config" / "bianque-node.example.toml"
DEMO_SCU_AET = "DEMO-MODALITY"
DEMO_PACS_AET = "DEMO-PACS"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
SC_CLASSES = {"1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.4"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the study, spool and results (default: a new temporary folder)")
    parser.add_argument("--config", type=Path, default=EXAMPLE_CONFIG, help="node configuration to start from")
    parser.add_argument("--weights", default=None, help="weights file (default: the configuration's, i.e. the shipped light model)")
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    parser.add_argument("--timeout", type=float, default=110.0, help="seconds to wait for the results")
    parser.add_argument("--quiet-period", type=float, default=1.0, help="series completion quiet period for the demo (s)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Received:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # SOP class -> path of the latest
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kinds(self) -> set[str]:
        with self.lock:
            classes = set(self.files)
        kinds = set()
        if SEG_CLASS in classes:
            kinds.add("SEG")
        if classes & SR_CLASSES:
            kinds.add("SR")
        if classes & SC_CLASSES:
            kinds.add("report image")
        return kinds


def start_receiver(folder: Path, port: int) -> tuple[Any, _Received]:
    """A minimal C-STORE SCP standing in for the PACS: writes what it receives to ``folder``."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification

    folder.mkdir(parents=True, exist_ok=True)
    received = _Received(folder)

    def handle_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        with received.lock:
            received.files[str(ds.SOPClassUID)] = path
        return 0x0000

    ae = AE(ae_title=DEMO_PACS_AET)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    return server, received


def demo_config(base: Path, workdir: Path, node_port: int, pacs_port: int, quiet_s: float, weights: str | None) -> Any:
    from dicom_node.config import NodeConfig

    data: dict[str, Any] = tomllib.loads(base.read_text()) if base.is_file() else {}
    network = dict(data.get("network", {}))
    network.update({"bind_address": "127.0.0.1", "port": node_port})
    network.setdefault("ae_title", "BIANQUE")
    network["tls"] = {"enabled": False}
    data["network"] = network
    data["allowed_senders"] = [{"ae_title": DEMO_SCU_AET, "address": "127.0.0.1"}]
    data["destinations"] = [{"name": "demo-pacs", "ae_title": DEMO_PACS_AET, "host": "127.0.0.1", "port": pacs_port,
                             "retry": {"max_attempts": 5, "initial_delay_s": 0.5, "max_delay_s": 2.0}}]
    spool = dict(data.get("spool", {}))
    spool["directory"] = str(workdir / "spool")
    data["spool"] = spool
    completion = dict(data.get("completion", {}))
    completion.update({"quiet_period_s": quiet_s, "poll_interval_s": 0.2})
    data["completion"] = completion
    processing = dict(data.get("processing", {}))
    processing["enabled"] = True
    data["processing"] = processing
    model = dict(data.get("model", {}))
    if weights:
        model["weights"] = str(weights)
    model["device"] = "cpu" if model.get("device", "auto") == "auto" else model["device"]
    data["model"] = model
    logging = dict(data.get("logging", {}))
    logging.update({"level": "WARNING", "format": "console"})
    data["logging"] = logging
    return NodeConfig.model_validate(data)


def run(args: argparse.Namespace) -> int:
    from dicom_node.config import Destination
    from dicom_node.logs import configure_logging
    from dicom_node.node import Node
    from dicom_node.scu import store_files
    from inference.synthetic.study import write_study

    console = Console()
    started = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bianque-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    node_port, pacs_port = _free_port(), _free_port()
    config = demo_config(args.config, workdir, node_port, pacs_port, args.quiet_period, args.weights)
    configure_logging(config.logging)
    from inference.weights_io import resolve_weights_path

    weights = resolve_weights_path(config.model.weights)
    if not weights.is_file():
        console.print(f"[red]weights file not found: {weights}[/] (the shipped light model, or --weights FILE)")
        return 1

    console.print(f"[bold]1.[/] writing a phantom lumbar MR study (seed {args.seed}) to {workdir / 'study'}")
    manifest = write_study(workdir / "study", seed=args.seed, patient_name="DEMO^PHANTOM")
    console.print(f"   {len(manifest.all_files)} instances in {len(manifest.series)} series: "
                  + ", ".join(f"{s.description} ({len(s.files)})" for s in manifest.series))

    console.print(f"[bold]2.[/] local PACS stand-in {DEMO_PACS_AET} on 127.0.0.1:{pacs_port}")
    server, received = start_receiver(workdir / "received", pacs_port)
    node = Node(config)
    try:
        console.print(f"[bold]3.[/] node {config.network.ae_title} on 127.0.0.1:{node_port} "
                      f"(configuration {args.config if args.config.is_file() else 'defaults'}, spool {config.spool.directory})")
        node.start()
        console.print(f"[bold]4.[/] C-STORE of the study from {DEMO_SCU_AET} to the node")
        target = Destination(name="node", ae_title=config.network.ae_title, host="127.0.0.1", port=node_port,
                             calling_ae_title=DEMO_SCU_AET)
        outcome = store_files(config, target, list(manifest.all_files))
        if not outcome.ok:
            console.print(f"[red]sending the study failed:[/] {outcome.error} (status {outcome.status})")
            return 1
        sent_at = time.monotonic()
        console.print(f"   {outcome.sent} instances sent; waiting for SEG, SR and report image "
                      f"(quiet period {config.completion.quiet_period_s:g} s, then the model runs) ...")
        wanted = {"SEG", "SR"} | ({"report image"} if config.outputs.report_image else set())
        deadline = sent_at + args.timeout
        while received.kinds() < wanted and time.monotonic() < deadline:
            failed = _failed_jobs(node)
            if failed:
                console.print(f"[red]the job failed:[/] {failed}")
                return 1
            time.sleep(0.1)
        missing = wanted - received.kinds()
        if missing:
            console.print(f"[red]timed out after {args.timeout:g} s; still missing: {', '.join(sorted(missing))}[/]")
            return 1
        back_at = time.monotonic()
    finally:
        node.stop()
        server.shutdown()

    _print_results(console, workdir, received)
    console.print(f"[green]Round trip done:[/] results back {back_at - sent_at:.1f} s after the last instance was sent "
                  f"(incl. {config.completion.quiet_period_s:g} s quiet period); whole demo {time.monotonic() - started:.1f} s.")
    console.print(f"Everything is under {workdir}")
    return 0


def _failed_jobs(node: Any) -> str | None:
    try:
        rows = node.index.jobs(10)
    except Exception:  # noqa: BLE001 - the status is informative only
        return None
    for row in rows:
        if getattr(row, "state", "") == "failed":
            return f"job {row.id} at stage {row.stage}: {row.last_error}"
    return None


def _print_results(console: Console, workdir: Path, received: _Received) -> None:
    results = sorted((workdir / "spool").rglob("results.json"))
    if results:
        document = json.loads(results[-1].read_text())
        table = Table(title="Disc quantitation (from the node's results.json)")
        for column in ("disc", "status", "DH mm", "DHI", "HDR", "ΔSI", "grade group", "reasons"):
            table.add_column(column, overflow="fold")
        for disc in document.get("discs", []):
            m = disc.get("measurements", {})

            def value(name: str, digits: int) -> str:
                item = m.get(name)
                return "-" if not item or item.get("value") is None else f"{item['value']:.{digits}f}"

            group = disc.get("grade_group")
            table.add_row(disc["level"], disc["status"], value("disc_height", 2), value("disc_height_index", 3),
                          value("height_to_diameter_ratio", 3), value("delta_si", 1),
                          "-" if group is None else ("5-8" if group == 5 else str(group)),
                          "; ".join(disc.get("reasons", []))[:120])
        console.print(table)
        console.print(f"results.json: {results[-1]}")
    with received.lock:
        files = dict(received.files)
    names = {SEG_CLASS: "SEG"} | {c: "SR" for c in SR_CLASSES} | {c: "report image" for c in SC_CLASSES}
    for sop_class, path in sorted(files.items(), key=lambda item: names.get(item[0], item[0])):
        console.print(f"  {names.get(sop_class, sop_class):13s} {path}")
