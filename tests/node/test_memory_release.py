"""After each study the processor hands freed heap memory back to the OS (glibc malloc_trim).

Measured with the full model (bench/results/memory.md): the node's peak RSS after one study fell from
1927-1957 MiB to 1789-1796 MiB, after three from 1939-1991 to 1795-1937 MiB. Here: memory freed in the
middle of the heap (every other 40 kB block, below glibc's mmap threshold, so free() keeps it) stays in the
process until the release, and most of it leaves with it.
"""

from __future__ import annotations

import os
import sys

import pytest

from dicom_node.pipeline import _release_freed_memory


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim and /proc are Linux only")
def test_freed_heap_memory_goes_back_to_the_os() -> None:
    blocks = [bytearray(40_000) for _ in range(6_000)]  # ~240 MB of heap chunks
    del blocks[::2]  # ~120 MB freed in between live chunks: free() cannot shrink the heap
    held = _rss_mib()
    _release_freed_memory()
    released = held - _rss_mib()
    assert released > 60, f"only {released:.0f} MiB released"
    assert len(blocks) == 3_000


def test_release_is_harmless_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    def missing(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    _release_freed_memory()  # no exception: a no-op where glibc is absent
