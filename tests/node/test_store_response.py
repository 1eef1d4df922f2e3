"""Pre-encoded C-STORE responses are byte for byte what pynetdicom would send, and peers accept them."""

from __future__ import annotations

import pytest
from pydicom.uid import MRImageStorage
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from dicom_node.store_response import _plain_store_response, encode_store_response


def pynetdicom_bytes(primitive: C_STORE) -> bytes:
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


def response(sop_class: str, sop_instance: str, message_id: int, status: int) -> C_STORE:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    return primitive


@pytest.mark.parametrize("sop_instance", ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498." + "1" * 37])
@pytest.mark.parametrize("message_id,status", [(1, 0x0000), (65535, 0xB000), (7, 0xA700), (300, 0xC000)])
def test_bytes_equal_pynetdicom_encoding(sop_instance: str, message_id: int, status: int) -> None:
    primitive = response(MRImageStorage, sop_instance, message_id, status)
    fast = _plain_store_response(primitive)
    assert fast == pynetdicom_bytes(primitive)
    assert fast == encode_store_response(MRImageStorage, sop_instance, message_id, status)


def test_responses_with_more_than_the_fixed_elements_stay_with_pynetdicom() -> None:
    commented = response(MRImageStorage, "1.2.3", 1, 0xC000)
    commented.ErrorComment = "cannot write to spool"
    assert _plain_store_response(commented) is None
    offending = response(MRImageStorage, "1.2.3", 1, 0xA900)
    offending.OffendingElement = [0x00080018]
    assert _plain_store_response(offending) is None
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = MRImageStorage
    request.AffectedSOPInstanceUID = "1.2.3"
    assert _plain_store_response(request) is None


@pytest.mark.parametrize("comment", ["cannot write to spool", "odd", "SOP UIDs differ from the request"])
def test_error_comment_bytes_equal_pynetdicom_encoding(comment: str) -> None:
    primitive = response(MRImageStorage, "1.2.3", 5, 0xA700)
    primitive.ErrorComment = comment
    assert encode_store_response(MRImageStorage, "1.2.3", 5, 0xA700, comment) == pynetdicom_bytes(primitive)
