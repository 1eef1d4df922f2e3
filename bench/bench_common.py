"""Helpers the benchmark scripts share: the machine line of a result table, loopback ports."""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path


def machine() -> str:
    """One line: OS, CPU cores and model, RAM, Python, and the load average now (before the run)."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB RAM, "
        f"Python {platform.python_version()}; load average before the run {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; RuntimeError after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")
