"""C-STORE requests answered on the association's DUL thread (pynetdicom 3.0.x, accepted associations).

pynetdicom hands every complete DIMSE message from the thread that reads the socket (the DUL
reactor) to a second thread (the association reactor), which builds request and response
primitives and events, runs the service class and queues the response back to the first thread.
On a 2-core machine with four concurrent associations those hand-offs (eight Python threads taking
turns on one GIL) cost more than the work itself: the node took four associations no faster than one.

A ``StoreLane`` sees each association's P-DATA values first (``pdata_receive``). A C-STORE request
whose command arrives in one fragment, on an accepted storage context for the same SOP class, while
no DIMSE logging handlers are bound, is collected here: its data set fragments are kept as views of
the received PDUs, and after the last one the node's store function (``Receiver.store_from_lane``:
decode the header, write durably, index) runs on the DUL thread, and the response goes out through
the DUL's own send path (``store_response.encode_store_response``). Every other message (C-ECHO,
multi-fragment commands, unexpected contexts, anything while releasing) passes through to pynetdicom
unchanged, and the lane tracks where such a message ends.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.pdu_primitives import P_DATA

from .store_response import encode_store_response

StoreFunction = Callable[[bytes | memoryview, str, str, str, Any], tuple[int, str | None]]
"""(data set, SOP Class UID, SOP Instance UID, transfer syntax, association) -> (status, error comment)."""

C_STORE_RQ = 0x0001
NO_DATA_SET = 0x0101
VERIFICATION = "1.2.840.10008.1.1"
_ELEMENT = struct.Struct("<HHI")
_U16 = struct.Struct("<H")


class LaneProtocolError(Exception):
    """A P-DATA value that cannot follow the message in progress (the association is aborted)."""


class Command:
    """The command elements the lane needs, decoded from an Implicit VR Little Endian command set."""

    __slots__ = ("field", "message_id", "data_set_type", "sop_class", "sop_instance")

    def __init__(self, field: int | None, message_id: int | None, data_set_type: int | None,
                 sop_class: str | None, sop_instance: str | None) -> None:
        self.field, self.message_id, self.data_set_type = field, message_id, data_set_type
        self.sop_class, self.sop_instance = sop_class, sop_instance

    @property
    def has_data_set(self) -> bool:
        return self.data_set_type is not None and self.data_set_type != NO_DATA_SET


def parse_command(data: bytes | bytearray | memoryview) -> Command | None:
    """The command elements of ``data``; None if it is not a well-formed group 0000 command set."""
    values: dict[int, bytes] = {}
    offset, end = 0, len(data)
    while offset < end:
        if offset + 8 > end:
            return None
        group, element, length = _ELEMENT.unpack_from(data, offset)
        offset += 8
        if group != 0x0000 or offset + length > end:
            return None
        values[element] = bytes(data[offset:offset + length])
        offset += length

    def us(element: int) -> int | None:
        raw = values.get(element)
        return int(_U16.unpack(raw)[0]) if raw is not None and len(raw) == 2 else None

    def ui(element: int) -> str | None:
        raw = values.get(element)
        if raw is None:
            return None
        try:
            return raw.rstrip(b"\0 ").decode("ascii")
        except UnicodeDecodeError:
            return None

    return Command(us(0x0100), us(0x0110), us(0x0800), ui(0x0002), ui(0x1000))


class StoreLane:
    """Per association: collects C-STORE requests and answers them on the DUL thread."""

    def __init__(self, assoc: Any, store: StoreFunction) -> None:
        self.assoc = assoc
        self.store = store
        self._mode = "idle"  # idle | lane (collecting a C-STORE) | pass (pynetdicom's message)
        self._command = bytearray()
        self._request: Command | None = None
        self._context_id = 0
        self._fragments: list[memoryview] = []
        self._disabled = False

    def feed(self, items: list[tuple[int, memoryview]]) -> list[tuple[int, memoryview]]:
        """Take the P-DATA values that belong to lane messages; return the rest, in order, for pynetdicom."""
        if self._disabled:
            return items
        passed: list[tuple[int, memoryview]] = []
        for context_id, value in items:
            control = value[0]
            is_command, is_last = bool(control & 1), bool(control & 2)
            if self._mode == "lane":
                if is_command or context_id != self._context_id:
                    raise LaneProtocolError("P-DATA value does not continue the C-STORE data set in progress")
                self._fragments.append(value[1:])
                if is_last:
                    self._complete()
                continue
            if self._mode == "idle" and is_command and is_last and not self._command:
                command = parse_command(value[1:])
                if command is not None and self._eligible(command, context_id):
                    self._mode, self._request, self._context_id = "lane", command, context_id
                    continue
            passed.append((context_id, value))
            self._track_passed(is_command, is_last, value)
        return passed

    # -- messages pynetdicom handles -----------------------------------------------------------------
    def _track_passed(self, is_command: bool, is_last: bool, value: memoryview) -> None:
        """Follow a passed-through message to its end, so the next one can take the lane again."""
        if is_command:
            self._command += value[1:]
            if not is_last:
                self._mode = "pass"
                return
            command = parse_command(self._command)
            self._command.clear()
            if command is None:
                self._disabled = True  # cannot tell where pynetdicom's message ends: leave all to it
                return
            self._mode = "pass" if command.has_data_set else "idle"
        elif is_last:
            self._mode = "idle"

    def _eligible(self, command: Command, context_id: int) -> bool:
        if command.field != C_STORE_RQ or not command.has_data_set or command.message_id is None:
            return False
        if not command.sop_class or not command.sop_instance or command.sop_class == VERIFICATION:
            return False
        assoc = self.assoc
        if getattr(assoc, "_sent_release", True) or not assoc.is_established:
            return False
        context = assoc._accepted_cx.get(context_id)
        if context is None or str(context.abstract_syntax) != command.sop_class:
            return False
        return not (assoc.get_handlers(evt.EVT_DIMSE_RECV) or assoc.get_handlers(evt.EVT_DIMSE_SENT))

    # -- a complete C-STORE request --------------------------------------------------------------------
    def _complete(self) -> None:
        request, context_id = self._request, self._context_id
        fragments, self._fragments = self._fragments, []
        self._mode, self._request = "idle", None
        assert request is not None and request.message_id is not None
        sop_class, sop_instance = str(request.sop_class), str(request.sop_instance)
        body: bytes | memoryview = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        transfer_syntax = str(self.assoc._accepted_cx[context_id].transfer_syntax[0])
        status, comment = self.store(body, sop_class, sop_instance, transfer_syntax, self.assoc)
        del body, fragments
        if self.assoc.is_established:
            self._send(context_id, encode_store_response(sop_class, sop_instance, request.message_id, status,
                                                         comment))

    def _send(self, context_id: int, command: bytes) -> None:
        """Queue the response on the DUL (sent by its state machine, like every other P-DATA)."""
        max_pdu = int(self.assoc.dimse.maximum_pdu_size or 0)
        size = max(max_pdu - 6, 1) if max_pdu else len(command)
        chunks = [command[i:i + size] for i in range(0, len(command), size)] or [b""]
        for number, chunk in enumerate(chunks):
            pdata = P_DATA()
            control = b"\x03" if number == len(chunks) - 1 else b"\x01"
            pdata.presentation_data_value_list.append((context_id, control + chunk))
            self.assoc.dul.send_pdu(pdata)


__all__ = ["Command", "LaneProtocolError", "StoreLane", "parse_command"]
