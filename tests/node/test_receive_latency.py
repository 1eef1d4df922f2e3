"""Receive path latency: accepted sockets have TCP_NODELAY, the DUL thread waits event-driven, and a
sender with Nagle's algorithm on (DCMTK's default) does not stall against the node."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage
from pynetdicom import AE

from dicom_node import reactor_wakeup
from peers import peer_env, require_tool, wait_for

pytestmark = pytest.mark.peers


def test_accepted_association_has_nodelay_and_event_driven_dul(running_node) -> None:
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(running_node.host, running_node.port, ae_title=running_node.aet)
    assert assoc.is_established
    try:
        ours = wait_for(lambda: [a for a in running_node.node.receiver._ae.active_associations if a.is_acceptor], 5,
                        "acceptor association listed")
        acceptor = ours[0]
        raw = acceptor.dul.socket.socket
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        if reactor_wakeup.SUPPORTED:
            assert acceptor.dul._run_loop_delay == 0.0
            assert getattr(acceptor.dul.socket, "_bianque_waker") is not None
            assert getattr(acceptor, "_bianque_wake", None) is not None  # association thread wakes on messages
    finally:
        assoc.release()


def _send(node, paths: list[Path], nodelay: bool) -> float:
    exe = require_tool("/usr/bin/storescu")
    env = peer_env() if nodelay else {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    start = time.perf_counter()
    done = subprocess.run([exe, "-aet", "STORESCU", "-aec", node.aet, node.host, str(node.port), *map(str, paths)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - start


def test_sender_with_nagle_on_does_not_stall(running_node, mr_study) -> None:
    files = mr_study.files
    half = len(files) // 2
    t_nodelay = _send(running_node, files[:half], nodelay=True)
    t_nagle = _send(running_node, files[half : 2 * half], nodelay=False)
    assert running_node.index.instance_count() == 2 * half
    extra_ms = (t_nagle - t_nodelay) / half * 1000
    # A Nagle / delayed-ACK stall costs about 40 ms per C-STORE; allow generous noise on a busy machine.
    assert extra_ms < 20, f"{extra_ms:.1f} ms more per instance with Nagle on ({t_nodelay:.2f} s vs {t_nagle:.2f} s)"


def test_per_association_context_copy_is_independent_and_equal(running_node) -> None:
    import copy

    from dicom_node.context_copy import ContextList

    server_contexts = running_node.node.receiver._server.contexts
    assert isinstance(server_contexts, ContextList) and len(server_contexts) > 100
    copied = copy.deepcopy(server_contexts)
    reference = copy.deepcopy(list(server_contexts))
    assert [vars(c) for c in copied] == [vars(c) for c in reference]
    before = list(server_contexts[0].transfer_syntax)
    copied[0].add_transfer_syntax("1.2.840.10008.1.2.4.999")  # in place: the lists must not be shared
    copied[0].result = 0
    assert server_contexts[0].transfer_syntax == before and server_contexts[0].result is None
