"""Ingest benchmark: instances/s and MB/s received by our node vs DCMTK storescp and Orthanc.

Same files for all three receivers (default: 400 MR slices of 512x512x16 bit, ~0.5 MB each), sent by
DCMTK ``/usr/bin/storescu`` over loopback, once in one association and once split over four
concurrent associations, in one run. ``TCP_NODELAY=1`` is set in the environment of every DCMTK
program and of Orthanc (otherwise DCMTK leaves Nagle on and each C-STORE stalls ~40 ms).

Receivers:
* ``storescp`` (DCMTK, ``--fork`` so concurrent associations run in parallel): writes files, never
  syncs: the ceiling;
* Orthanc with its default ``SyncStorageArea`` (fdatasync before answering): the durable peer to beat;
* our node (``bianque serve``, processing disabled): durable (temp file, fsync, rename, SQLite index).

Also: a sender with Nagle on (no TCP_NODELAY in storescu's env) against our node must not stall.

Usage: ``.venv/bin/python bench/bench_ingest.py [--count 400] [--size 512] [--rounds 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import free_port, machine, wait_port  # noqa: E402
STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"
ORTHANC = next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.path.exists(p)), None)
NODE_AET = "BIANQUE"


def env(nodelay: bool = True) -> dict[str, str]:
    e = dict(os.environ)
    if nodelay:
        e["TCP_NODELAY"] = "1"
    else:
        e.pop("TCP_NODELAY", None)
    return e


def write_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName = "MR", "BENCH", "BENCH^INGEST"
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 1, i + 1, "T2 TSE SAG"
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [float(i) * 0.5, -128.0, 128.0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 0.5
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes()
        path = folder / f"IM{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@dataclass
class Receiver:
    name: str
    port: int
    aet: str
    process: subprocess.Popen[bytes]
    count_received: callable  # type: ignore[valid-type]
    workdir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_storescp(workdir: Path) -> Receiver:
    out = workdir / "received"
    out.mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(
        [STORESCP, "--fork", "-od", str(out), "-aet", "STORESCP", str(port)],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return Receiver("DCMTK storescp (no fsync)", port, "STORESCP", proc,
                    lambda: sum(1 for _ in out.iterdir()), workdir)


def start_orthanc(workdir: Path) -> Receiver:
    assert ORTHANC is not None
    port, http = free_port(), free_port()
    storage = workdir / "storage"
    config = {
        "Name": "bench", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "HttpPort": http, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomAet": "ORTHANC", "DicomPort": port, "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True, "Plugins": [],
    }
    (workdir / "orthanc.json").write_text(json.dumps(config))
    log = open(workdir / "orthanc.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([ORTHANC, str(workdir / "orthanc.json")], env=env(), stdout=log, stderr=subprocess.STDOUT)
    wait_port(port)
    wait_port(http)
    import requests

    def count() -> int:
        return int(requests.get(f"http://127.0.0.1:{http}/statistics", timeout=10).json()["CountInstances"])

    return Receiver("Orthanc (SyncStorageArea, default)", port, "ORTHANC", proc, count, workdir)


def start_node(workdir: Path) -> Receiver:
    from dicom_node.config import dump_toml

    port = free_port()
    config = {
        "network": {"ae_title": NODE_AET, "bind_address": "127.0.0.1", "port": port, "max_associations": 16},
        "allowed_senders": [{"ae_title": "STORESCU"}],
        "destinations": [],
        "spool": {"directory": str(workdir / "spool")},
        "completion": {"quiet_period_s": 3600.0},
        "processing": {"enabled": False},
        "logging": {"format": "json", "level": "WARNING"},
    }
    path = workdir / "node.toml"
    path.write_text(dump_toml(config))
    log = open(workdir / "node.log", "wb")  # noqa: SIM115
    bianque = Path(sys.executable).with_name("bianque")
    proc = subprocess.Popen([str(bianque), "serve", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, 60)
    spool = workdir / "spool"

    def count() -> int:
        import sqlite3

        db = spool / "index.sqlite3"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0])

    return Receiver("bianque-node (fsync + rename + SQLite)", port, NODE_AET, proc, count, workdir)


def send(receiver: Receiver, files: list[Path], associations: int, nodelay: bool = True) -> float:
    chunks = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [STORESCU, "-aet", "STORESCU", "-aec", receiver.aet, "127.0.0.1", str(receiver.port), *map(str, chunk)],
            env=env(nodelay), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for chunk in chunks
    ]
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace")[-500:])
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"storescu to {receiver.name} failed: {errors}")
    return elapsed


def measure(receiver_start, workdir: Path, files: list[Path], associations: int) -> tuple[str, float]:
    """(receiver name, seconds) for one fresh receiver taking ``files`` over ``associations``."""
    workdir.mkdir()
    receiver = receiver_start(workdir)
    try:
        elapsed = send(receiver, files, associations)
        deadline = time.monotonic() + 30
        while receiver.count_received() < len(files) and time.monotonic() < deadline:
            time.sleep(0.1)
        got = receiver.count_received()
        if got != len(files):
            raise RuntimeError(f"{receiver.name}: {got} of {len(files)} instances stored")
    finally:
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return receiver.name, elapsed


def nagle_check(root: Path, files: list[Path], count: int) -> str:
    workdir = root / "nagle"
    workdir.mkdir()
    receiver = start_node(workdir)
    try:
        subset = files[:count]  # fresh instances for each run (no duplicate shortcut)
        t_off = send(receiver, subset, 1, nodelay=True)
        t_on = send(receiver, files[count: 2 * count], 1, nodelay=False)
    finally:
        receiver.stop()
    extra_ms = (t_on - t_off) / len(subset) * 1000
    verdict = "no stall" if extra_ms < 20 else "STALL (Nagle/delayed-ACK interaction)"
    return (
        f"Nagle check: storescu -> our node, {len(subset)} instances, one association: with TCP_NODELAY=1 "
        f"{len(subset) / t_off:.0f} instances/s, with Nagle on (no TCP_NODELAY) {len(subset) / t_on:.0f} "
        f"instances/s, {extra_ms:+.1f} ms per instance: {verdict} (a stall costs about 40 ms per C-STORE)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds (each receiver and association count once per round); medians reported")
    parser.add_argument("--nagle-count", type=int, default=100, help="instances for the Nagle-on check")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--receivers", default="storescp,orthanc,node")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bianque-bench-ingest-"))
    header = machine()
    try:
        files = write_files(root / "files", args.count, args.size)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        starters = {"storescp": start_storescp, "orthanc": start_orthanc, "node": start_node}
        keys = args.receivers.split(",")
        seconds: dict[tuple[str, int], list[float]] = {}
        names: dict[str, str] = {}
        for round_number in range(args.rounds):
            for key in keys:
                for associations in (1, 4):
                    name, elapsed = measure(starters[key], root / f"{key}-{associations}-{round_number}", files,
                                            associations)
                    names[key] = name
                    seconds.setdefault((key, associations), []).append(elapsed)
                    print(f"round {round_number + 1}: {name:45s} {associations} assoc: {len(files) / elapsed:7.1f} "
                          f"inst/s {total_mb / elapsed:7.1f} MB/s ({elapsed:.2f} s)", flush=True)
        nagle_line = nagle_check(root, files, args.nagle_count) if "node" in keys else ""
        print(nagle_line)

        def rate(key: str, associations: int) -> float:
            return len(files) / statistics.median(seconds[(key, associations)])

        rows = []
        for key in keys:
            for associations in (1, 4):
                rates = sorted(len(files) / t for t in seconds[(key, associations)])
                versus = f"{rate(key, associations) / rate('orthanc', associations):.2f}" \
                    if "orthanc" in keys and key != "orthanc" else ""
                rows.append(f"| {names[key]} | {associations} | {rate(key, associations):.0f} | "
                            f"{rates[0]:.0f}-{rates[-1]:.0f} | {rate(key, associations) * total_mb / len(files):.1f} | "
                            f"{versus} |")
        table = [
            f"| receiver | associations | instances/s (median of {args.rounds}) | range | MB/s | vs Orthanc |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
        ]
        text = "\n".join(
            [
                "# Ingest benchmark",
                "",
                f"Machine: {header}.",
                "",
                f"{len(files)} MR instances of {args.size}x{args.size}x16 bit ({total_mb:.0f} MB in all), explicit VR "
                "little endian, sent by DCMTK `/usr/bin/storescu` over loopback; four associations = four storescu "
                "processes each sending a quarter. TCP_NODELAY=1 in the environment of every DCMTK program and of "
                f"Orthanc. {args.rounds} interleaved rounds, a fresh receiver for every measurement "
                "(`bench/bench_ingest.py`).",
                "",
                *table,
                "",
                nagle_line,
                "",
            ]
        )
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
