"""The store lane: C-STORE requests answered on the DUL thread, everything else left to pynetdicom."""

from __future__ import annotations

import io
import logging
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import MRImageStorage
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import encode

from dicom_node import status_codes
from dicom_node.store_lane import StoreLane, parse_command
from peers import peer_env, require_tool

pytestmark = pytest.mark.peers


def command_bytes(primitive, message_class) -> bytes:
    message = message_class()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


def test_parse_command_reads_pynetdicom_encodings() -> None:
    request = C_STORE()
    request.MessageID = 517
    request.AffectedSOPClassUID = MRImageStorage
    request.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    request.Priority = 2
    request.MoveOriginatorApplicationEntityTitle = "MOVER"
    request.MoveOriginatorMessageID = 3
    request.DataSet = io.BytesIO(b"\x08\x00\x18\x00")  # any non-empty data set
    command = parse_command(command_bytes(request, C_STORE_RQ))
    assert command is not None
    assert (command.field, command.message_id, command.sop_class, command.sop_instance, command.has_data_set) == \
        (0x0001, 517, MRImageStorage, "1.2.826.0.1.3680043.8.498.1", True)
    echo = C_ECHO()
    echo.MessageID = 9
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    command = parse_command(command_bytes(echo, C_ECHO_RQ))
    assert command is not None and (command.field, command.message_id, command.has_data_set) == (0x0030, 9, False)
    assert parse_command(b"\x08\x00\x18\x00\x02\x00\x00\x00ab") is None  # not group 0000
    assert parse_command(b"\x00\x00\x00\x01\xff\x00\x00\x00ab") is None  # runs past the end


class Calls:
    def __init__(self) -> None:
        self.lane = 0
        self.pynetdicom = 0


def counted_node(node_factory, calls: Calls):
    """A node whose two C-STORE entry points count their calls (patched before it starts listening)."""
    running = node_factory(start=False)
    receiver = running.node.receiver
    lane, event = receiver.store_from_lane, receiver.handle_store

    def store_from_lane(*args):
        calls.lane += 1
        return lane(*args)

    def handle_store(*args):
        calls.pynetdicom += 1
        return event(*args)

    receiver.store_from_lane = store_from_lane
    receiver.handle_store = handle_store
    running.node.start()
    return running


def storescu(node, *paths: Path) -> subprocess.CompletedProcess[str]:
    exe = require_tool("/usr/bin/storescu")
    return subprocess.run([exe, "-aet", "STORESCU", "-aec", node.aet, node.host, str(node.port), *map(str, paths)],
                          env=peer_env(), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("pynetdicom_logging", [False, True], ids=["lane", "pynetdicom-path"])
def test_dcmtk_instances_take_the_lane_unless_dimse_logging_is_on(
    node_factory, mr_study, request: pytest.FixtureRequest, pynetdicom_logging: bool
) -> None:
    if pynetdicom_logging:  # as with [logging] level = "DEBUG": pynetdicom's message log handlers are bound
        logger = logging.getLogger("pynetdicom")
        previous = logger.level
        logger.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the loggers' level caches
        request.addfinalizer(lambda: logger.setLevel(previous))
    calls = Calls()
    node = counted_node(node_factory, calls)
    files = mr_study.series[0].files
    result = storescu(node, *files)
    assert result.returncode == 0, result.stderr
    assert (calls.lane, calls.pynetdicom) == ((0, len(files)) if pynetdicom_logging else (len(files), 0))
    assert node.index.instance_count() == len(files)
    for original in files:
        ds = pydicom.dcmread(original)
        stored = node.spool_dir / "studies" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        assert stored.read_bytes()[-len(ds.PixelData):] == ds.PixelData


def test_failures_carry_their_error_comment_through_the_lane(node_factory, mr_study, tmp_path: Path) -> None:
    calls = Calls()
    node = counted_node(node_factory, calls)
    ds = pydicom.dcmread(mr_study.series[0].files[0])
    ds.SeriesInstanceUID = "1.2.3/../../etc"  # a path-unsafe UID
    ae = AE("TESTSCU")
    ae.add_requested_context(MRImageStorage, str(ds.file_meta.TransferSyntaxUID))
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(node.host, node.port, ae_title=node.aet)
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(ds)
        assert int(rsp.Status) == status_codes.MISSING_OR_INVALID_UID
        assert "Series Instance UID" in str(rsp.ErrorComment)
        # the same association goes on: a good instance after the failure, and a C-ECHO (pynetdicom's path)
        good = pydicom.dcmread(mr_study.series[0].files[1])
        assert int(assoc.send_c_store(good).Status) == status_codes.SUCCESS
        assert int(assoc.send_c_echo().Status) == status_codes.SUCCESS
    finally:
        assoc.release()
    assert calls.lane == 2 and calls.pynetdicom == 0
    assert node.index.instance_count() == 1


class FakeAssociation:
    """What the lane reads of an association: state, accepted contexts, bound handlers."""

    _sent_release = False
    is_established = True
    _accepted_cx = {1: type("Cx", (), {"abstract_syntax": MRImageStorage, "transfer_syntax": ["1.2.840.10008.1.2"]})()}

    def __init__(self) -> None:
        self.sent: list = []
        self.dimse = type("Dimse", (), {"maximum_pdu_size": 16384})()
        self.dul = type("Dul", (), {"send_pdu": staticmethod(self.sent.append)})()

    @staticmethod
    def get_handlers(_event):
        return []


def store_command(sop_class: str = MRImageStorage) -> bytes:
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = "1.2.3"
    request.Priority = 2
    request.DataSet = io.BytesIO(b"\x08\x00\x18\x00")
    return command_bytes(request, C_STORE_RQ)


def test_lane_rejects_a_command_inside_a_data_set() -> None:
    from dicom_node.store_lane import LaneProtocolError

    command = store_command()
    lane = StoreLane(FakeAssociation(), lambda *args: (0, None))
    assert lane.feed([(1, memoryview(b"\x03" + command)), (1, memoryview(b"\x00" + b"x" * 10))]) == []
    with pytest.raises(LaneProtocolError):
        lane.feed([(1, memoryview(b"\x03" + command))])


def test_requests_the_lane_does_not_take_pass_through_and_it_follows_them_to_their_end() -> None:
    stored = []
    assoc = FakeAssociation()
    lane = StoreLane(assoc, lambda body, *args: stored.append(bytes(body)) or (0, None))
    ct = "1.2.840.10008.5.1.4.1.1.2"
    foreign = [(1, memoryview(b"\x03" + store_command(ct))), (1, memoryview(b"\x00abc")), (1, memoryview(b"\x02de"))]
    assert lane.feed(foreign) == foreign  # SOP class differs from the context's: pynetdicom's
    split = store_command()
    two_part = [(1, memoryview(b"\x01" + split[:20])), (1, memoryview(b"\x03" + split[20:])),
                (1, memoryview(b"\x02xyz"))]
    assert lane.feed(two_part) == two_part  # command in two fragments: pynetdicom's
    assert stored == []
    # after both messages ended, the next plain request takes the lane again
    assert lane.feed([(1, memoryview(b"\x03" + split)), (1, memoryview(b"\x00ab")), (1, memoryview(b"\x02cd"))]) == []
    assert stored == [b"abcd"]
    (context_id, value), = assoc.sent[0].presentation_data_value_list  # the response, one command fragment
    assert context_id == 1 and bytes(value[:1]) == b"\x03" and parse_command(value[1:]).field == 0x8001
