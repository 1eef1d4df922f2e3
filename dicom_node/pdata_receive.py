"""P-DATA-TF PDUs read without copies, for accepted associations (pynetdicom 3.0.x).

pynetdicom copies every received P-DATA fragment about five times before it lands in the C-STORE
request's data set: the PDU is appended to a header buffer, turned into ``bytes`` for the
EVT_DATA_RECV event, sliced into PDV items, sliced again past the message control header and then
written to the data set's ``BytesIO``. For a 0.5 MB MR slice that is megabytes of copying and
freshly mapped memory per instance, all under the GIL.

``attach`` gives an association's DUL a ``_read_pdu_data`` that reads a P-DATA-TF PDU's body once
(``recv_into``, see reactor_wakeup) and hands the DIMSE layer a standard ``P_DATA`` primitive whose
PDV values are ``memoryview`` slices of that buffer; pynetdicom's own code then writes each slice
once into the message. Everything else is unchanged: other PDU types, malformed PDUs, closed
connections and associations with EVT_DATA_RECV or EVT_PDU_RECV handlers (pynetdicom's logging at
DEBUG) take pynetdicom's path, through the same state-machine events (Evt10 for P-DATA-TF).
"""

from __future__ import annotations

import struct
from typing import Any

import pynetdicom
from pynetdicom import evt
from pynetdicom.pdu_primitives import P_DATA

from .store_lane import LaneProtocolError, StoreLane

SUPPORTED = pynetdicom.__version__.startswith("3.0.")
P_DATA_TF = 0x04
_HEADER = struct.Struct(">BBL")
_ITEM = struct.Struct(">LB")


class _PresentationDataPDU:
    """A received P-DATA-TF PDU as the state machine's DT-2 action uses it (``to_primitive``)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[int, memoryview]]) -> None:
        self._items = items

    def to_primitive(self) -> P_DATA:
        primitive = P_DATA()
        primitive.presentation_data_value_list.extend(self._items)  # type: ignore[arg-type]
        return primitive


def split_pdv_items(body: memoryview) -> list[tuple[int, memoryview]] | None:
    """(context ID, PDV value incl. its control header) per item, or None if the items do not add up."""
    items = []
    offset, end = 0, len(body)
    while offset < end:
        if offset + 6 > end:
            return None
        length, context_id = _ITEM.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > end:
            return None
        items.append((context_id, body[offset + 5:offset + 4 + length]))
        offset += 4 + length
    return items if items else None


def attach(assoc: Any, lane: StoreLane | None = None) -> None:
    """Read ``assoc``'s P-DATA-TF PDUs without copies (no-op on another pynetdicom).

    With a ``lane``, the P-DATA values go through it first: what it takes (C-STORE requests it
    answers itself) never reaches pynetdicom's DIMSE layer.
    """
    dul = getattr(assoc, "dul", None)
    if not SUPPORTED or dul is None or not hasattr(dul, "_read_pdu_data"):
        return
    original = dul._read_pdu_data
    unpeek = bytearray()

    def read_pdu_data() -> None:
        if assoc.get_handlers(evt.EVT_DATA_RECV) or assoc.get_handlers(evt.EVT_PDU_RECV):
            original()
            return
        sock = dul.socket
        try:
            header = sock.recv(6)
        except (OSError, TimeoutError):
            dul.event_queue.put("Evt17")
            return
        if len(header) != 6:
            dul.event_queue.put("Evt17")
            return
        pdu_type, _, length = _HEADER.unpack(header)
        if pdu_type != P_DATA_TF:
            unpeek[:] = header  # let pynetdicom read this PDU from its first byte
            original()
            return
        try:
            body = sock.recv(length)
        except (OSError, TimeoutError):
            dul.event_queue.put("Evt17")
            return
        items = split_pdv_items(memoryview(body)) if len(body) == length else None
        if items is None:
            dul.event_queue.put("Evt17" if len(body) != length else "Evt19")
            return
        if lane is not None:
            try:
                items = lane.feed(items)
            except LaneProtocolError:
                dul.event_queue.put("Evt19")  # invalid PDU: pynetdicom aborts the association
                return
            if not items:
                return  # all taken by the lane; its response is queued on the DUL
        dul._recv_pdu.put(_PresentationDataPDU(items))
        dul.event_queue.put("Evt10")

    dul._read_pdu_data = read_pdu_data
    _serve_unpeeked_header(dul, unpeek)


def _serve_unpeeked_header(dul: Any, unpeek: bytearray) -> None:
    """Make the association socket return the header read ahead before reading the connection again."""
    sock = dul.socket
    if sock is None:
        return
    recv = sock.recv

    def recv_with_unpeek(nr_bytes: int) -> bytearray:
        if not unpeek:
            return recv(nr_bytes)  # type: ignore[no-any-return]
        head = bytearray(unpeek[:nr_bytes])
        del unpeek[:nr_bytes]
        if len(head) < nr_bytes:
            head += recv(nr_bytes - len(head))
        return head

    sock.recv = recv_with_unpeek


__all__ = ["attach", "split_pdv_items"]
