"""Event-driven waiting for pynetdicom's reactor threads on accepted associations (pynetdicom 3.0.x).

pynetdicom's DUL reactor polls: when a loop finds nothing to do it sleeps ``_run_loop_delay``
(1 ms) and then checks the socket with a zero-timeout ``select``. During a C-STORE that costs
a sleep after each idle check (waiting for the sender's next PDU, and for our own C-STORE
response to be queued), which on a loaded machine is several milliseconds per instance.

``attach(assoc)`` (called at EVT_CONN_OPEN, before the DUL thread starts) makes that thread
wait instead in ``select`` on the association's socket *and* a wake-up socket pair: incoming data
wakes it at once, and so does every primitive our side queues for sending (``send_pdu`` is wrapped
to write one byte to the pair). The select has a short timeout so that pynetdicom's timers (ARTIM,
idle) and kill flag are still checked as before. The DUL loop delay is set to 0: the wait happens
in ``select``. Also sets TCP_NODELAY on the accepted socket, so that our responses go out at once,
and (Linux) TCP_QUICKACK whenever data arrives: a sender with Nagle's algorithm on (DCMTK's default)
holds a small PDU (the data set after the C-STORE command) until its previous segment is
acknowledged, and a delayed ACK would stall every C-STORE by about 40 ms.

The association thread polls too: its reactor loop sleeps 1 ms before each look for a complete
DIMSE message. ``attach`` gives the association a wake-up event that its DIMSE message queue and
the DUL's primitive queue (release, abort) set on every ``put``, and pynetdicom.association's
``time`` is replaced by a proxy whose ``sleep``, on a marked association thread only, waits on that
event instead (up to ASSOCIATION_WAIT_S in the reactor loop, see ``_TimeProxy``); every other thread
and call gets the real ``time``.

The same marked sockets read each PDU with ``recv_into`` into one buffer of the PDU's size
(pynetdicom reads 4 KiB per ``recv`` call: 128 calls and as many buffer extensions per 512 KiB).

The patch is version-guarded (``SUPPORTED``); on another pynetdicom version ``attach`` only sets
TCP_NODELAY and pynetdicom polls as usual. Only sockets that ``attach`` marked behave differently.
"""

from __future__ import annotations

import queue
import select
import socket
import ssl
import sys
import threading
import time
from typing import Any

import pynetdicom
import pynetdicom.association
from pynetdicom.transport import AssociationSocket

SUPPORTED = pynetdicom.__version__.startswith("3.0.")
WAIT_S = 0.02
"""Longest wait in select: how often pynetdicom's timers and kill flag are looked at while idle."""
ASSOCIATION_WAIT_S = 0.02
"""Longest wait of an idle association thread between looks at its DUL thread and idle timer."""

_WAKER_ATTR = "_bianque_waker"
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux


def _quickack(sock: socket.socket) -> None:
    """Linux: send pending ACKs now and leave delayed-ACK mode (the kernel re-enters it by itself)."""
    if _QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass


def _patched_ready(original: property) -> property:
    def ready(self: AssociationSocket) -> bool:
        waker: socket.socket | None = getattr(self, _WAKER_ATTR, None)
        sock = self.socket
        if waker is None or sock is None or self._is_connected is False:
            return bool(original.fget(self))  # type: ignore[misc]
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted bytes already buffered: select would not see them
        try:
            readable, _, _ = select.select([sock, waker], [], [], WAIT_S)
        except (OSError, ValueError):
            return bool(original.fget(self))  # type: ignore[misc]  # reports the closed connection
        if waker in readable:
            try:
                while waker.recv(4096):
                    pass
            except OSError:  # BlockingIOError once drained, or closed
                pass
        if sock not in readable:
            return False
        _quickack(sock)  # acknowledge what arrived now: a Nagle-on sender holds its next small PDU until then
        return True

    return property(ready)


def _patched_recv(original: Any) -> Any:
    def recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
        """pynetdicom reads a PDU in 4 KiB ``recv`` calls; read straight into one buffer instead."""
        sock = self.socket
        if getattr(self, _WAKER_ATTR, None) is None or sock is None:
            return original(self, nr_bytes)  # type: ignore[no-any-return]
        buffer = bytearray(nr_bytes)
        got = 0
        with memoryview(buffer) as view:
            while got < nr_bytes:
                _quickack(sock)  # a Nagle-on sender holds the tail of this PDU until we acknowledge
                count = sock.recv_into(view[got:], nr_bytes - got)
                if not count:  # connection closed: return what arrived, as pynetdicom does
                    break
                got += count
        if got < nr_bytes:
            del buffer[got:]
        return buffer

    recv._bianque_patched = True  # type: ignore[attr-defined]
    return recv


if SUPPORTED and isinstance(getattr(AssociationSocket, "ready", None), property):
    if not getattr(AssociationSocket.recv, "_bianque_patched", False):
        AssociationSocket.recv = _patched_recv(AssociationSocket.recv)  # type: ignore[method-assign]
    if not getattr(AssociationSocket.ready.fget, "_bianque_patched", False):
        _ready = _patched_ready(AssociationSocket.ready)
        _ready.fget._bianque_patched = True  # type: ignore[attr-defined]
        AssociationSocket.ready = _ready  # type: ignore[method-assign]
else:  # pragma: no cover - another pynetdicom: keep its polling
    SUPPORTED = False


_WAKE_EVENT_ATTR = "_bianque_wake"


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """The DIMSE message queue of one association: every ``put`` also sets the association's event."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake.set()


class _TimeProxy:
    """``time`` for pynetdicom.association: ``sleep`` on a marked association thread waits on its event.

    In the acceptor's reactor loop (``Association._run_reactor``) the wait lasts up to
    ASSOCIATION_WAIT_S instead of 1 ms: everything that loop serves arrives through a queue that
    sets the event (DIMSE messages, the DUL's release and abort primitives); only the DUL thread's
    end and the idle timer are polled, and those are noticed within that time. An association whose
    C-STOREs all take the store lane would otherwise wake its thread 1,000 times a second for nothing.
    """

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sleep(self, seconds: float) -> None:
        wake: threading.Event | None = getattr(threading.current_thread(), _WAKE_EVENT_ATTR, None)
        if wake is None:
            self._real.sleep(seconds)
            return
        if sys._getframe(1).f_code.co_name == "_run_reactor":
            seconds = max(seconds, ASSOCIATION_WAIT_S)
        wake.wait(seconds)
        wake.clear()  # a message put before this clear is still in the queue the loop reads next


_ASSOCIATION_WAKE = SUPPORTED and getattr(pynetdicom.association, "time", None) is time
if _ASSOCIATION_WAKE:
    pynetdicom.association.time = _TimeProxy(time)  # type: ignore[attr-defined]


def attach(assoc: Any) -> None:
    """Set TCP_NODELAY on the association's socket and make its DUL thread wait event-driven."""
    assoc_socket = getattr(assoc.dul, "socket", None)
    raw = getattr(assoc_socket, "socket", None)
    if raw is None:
        return
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    if not SUPPORTED:
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    dul = assoc.dul
    send_pdu = dul.send_pdu

    def send_pdu_and_wake(primitive: Any) -> None:
        send_pdu(primitive)
        try:
            writer.send(b"\0")
        except OSError:  # buffer full (a wake-up is pending anyway) or already closed
            pass

    dul.send_pdu = send_pdu_and_wake
    setattr(assoc_socket, _WAKER_ATTR, reader)
    assoc_socket._bianque_waker_writer = writer
    dul._run_loop_delay = 0.0
    dimse = getattr(assoc, "dimse", None)
    if _ASSOCIATION_WAKE and dimse is not None and type(dimse.msg_queue) is queue.Queue \
            and dimse.msg_queue.empty() and type(dul.to_user_queue) is queue.Queue and dul.to_user_queue.empty():
        wake = threading.Event()
        dimse.msg_queue = _WakingQueue(wake)
        dul.to_user_queue = _WakingQueue(wake)  # release and abort primitives wake the association too
        setattr(assoc, _WAKE_EVENT_ATTR, wake)


def detach(assoc: Any) -> None:
    """Close the wake-up pair (at EVT_CONN_CLOSE); the DUL falls back to pynetdicom's own check."""
    assoc_socket = getattr(assoc.dul, "socket", None)
    if assoc_socket is None:
        return
    reader = getattr(assoc_socket, _WAKER_ATTR, None)
    writer = getattr(assoc_socket, "_bianque_waker_writer", None)
    if reader is None:
        return
    setattr(assoc_socket, _WAKER_ATTR, None)
    assoc.dul._run_loop_delay = 0.001
    for sock in (reader, writer):
        if sock is not None:
            sock.close()
