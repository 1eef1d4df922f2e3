"""C-STORE responses encoded directly, for accepted associations (pynetdicom 3.0.x).

For every response pynetdicom's ``DIMSEServiceProvider.send_msg`` builds a pydicom command-set
``Dataset`` element by element (each value validated), encodes it twice (the second time for
Command Group Length) and then splits it into P-DATA primitives: about a sixth of the node's CPU per
received instance. A C-STORE-RSP is seven fixed elements, so ``encode_store_response`` writes its
Implicit VR Little Endian bytes (PS3.7 6.3.1, E.1) at once, and ``attach`` makes an association send
them as one command PDV whenever the response carries nothing else: no Offending Element, no Error
Comment, no handler bound to EVT_DIMSE_SENT (pynetdicom's own message logging when the log level is
DEBUG), and the message fits the peer's maximum PDU. Every other message (failures with a comment,
C-ECHO, anything sent as a requestor) still goes through pynetdicom. The tests compare the bytes with
pynetdicom's own encoding.
"""

from __future__ import annotations

import struct
from typing import Any

import pynetdicom
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

SUPPORTED = pynetdicom.__version__.startswith("3.0.")

C_STORE_RSP_FIELD = 0x8001
NO_DATA_SET = 0x0101
LAST_COMMAND_FRAGMENT = b"\x03"  # PS3.8 E.2: message control header, command, last fragment
PDV_OVERHEAD = 6  # PDV item length (4) + context ID (1) + control header (1)


def _ui(element: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def _us(element: int, value: int) -> bytes:
    return struct.pack("<HHIH", 0x0000, element, 2, value)


def _lo(element: int, text: str) -> bytes:
    value = text.encode("ascii", "replace")
    if len(value) % 2:
        value += b" "
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def encode_store_response(sop_class_uid: str, sop_instance_uid: str, message_id: int, status: int,
                          error_comment: str | None = None) -> bytes:
    """The command set of a C-STORE-RSP (without Offending Element; Error Comment when given)."""
    body = b"".join((
        _ui(0x0002, sop_class_uid),
        _us(0x0100, C_STORE_RSP_FIELD),
        _us(0x0120, message_id),
        _us(0x0800, NO_DATA_SET),
        _us(0x0900, status),
        _lo(0x0902, error_comment) if error_comment is not None else b"",
        _ui(0x1000, sop_instance_uid),
    ))
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


def _plain_store_response(primitive: Any) -> bytes | None:
    """The encoded command set when ``primitive`` is a C-STORE response with only the fixed elements."""
    if type(primitive) is not C_STORE:
        return None
    message_id, status = primitive.MessageIDBeingRespondedTo, primitive.Status
    sop_class, sop_instance = primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID
    if None in (message_id, status, sop_class, sop_instance):
        return None
    if primitive.OffendingElement is not None or primitive.ErrorComment is not None:
        return None
    return encode_store_response(str(sop_class), str(sop_instance), int(message_id), int(status))


def attach(assoc: Any) -> None:
    """Make ``assoc`` send plain C-STORE responses pre-encoded (no-op on another pynetdicom)."""
    dimse = getattr(assoc, "dimse", None)
    if not SUPPORTED or dimse is None:
        return
    send_msg = dimse.send_msg

    def send_msg_fast(primitive: Any, context_id: int) -> None:
        command = _plain_store_response(primitive)
        max_pdu = dimse.maximum_pdu_size
        if command is None or assoc.get_handlers(evt.EVT_DIMSE_SENT) or \
                (max_pdu and len(command) + PDV_OVERHEAD > max_pdu):
            send_msg(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, LAST_COMMAND_FRAGMENT + command))
        dimse.dul.send_pdu(pdata)

    dimse.send_msg = send_msg_fast


__all__ = ["attach", "encode_store_response"]
