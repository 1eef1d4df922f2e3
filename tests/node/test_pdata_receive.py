"""P-DATA-TF PDUs read without copies: same data sets, same protocol behaviour, over real associations."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom import AE, evt

from dicom_factory import mr_image
from dicom_node import pdata_receive, reactor_wakeup, store_response
from dicom_node.pdata_receive import split_pdv_items
from peers import peer_env, require_tool


def pdv(context_id: int, control: int, value: bytes) -> bytes:
    return struct.pack(">LB", len(value) + 2, context_id) + bytes([control]) + value


def test_split_pdv_items() -> None:
    body = pdv(1, 0x03, b"command") + pdv(3, 0x00, b"x" * 1000) + pdv(3, 0x02, b"")
    items = split_pdv_items(memoryview(body))
    assert items is not None
    assert [(cid, bytes(v)) for cid, v in items] == [(1, b"\x03command"), (3, b"\x00" + b"x" * 1000), (3, b"\x02")]
    assert all(isinstance(v, memoryview) for _, v in items)
    for bad in (body[:-1], body + b"\x00\x00", struct.pack(">LB", 1, 1) + b"\x00", b""):
        assert split_pdv_items(memoryview(bad)) is None


@pytest.fixture(autouse=True)
def quiet_pynetdicom(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the node (receiver.build_ae): pynetdicom's per-PDU log handlers are bound only at DEBUG."""
    from pynetdicom import _config

    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")


class Acceptor:
    """A pynetdicom C-STORE SCP with the node's per-association patches; keeps what it received."""

    def __init__(self, max_pdu: int, log_pdus: bool) -> None:
        self.received: dict[str, bytes] = {}
        self.fast_reader: list[bool] = []
        self.ae = AE("ACCEPTOR")
        self.ae.maximum_pdu_size = max_pdu
        self.ae.add_supported_context(MRImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.pdus = 0
        handlers = [(evt.EVT_CONN_OPEN, self._open), (evt.EVT_C_STORE, self._store)]
        if log_pdus:
            handlers.append((evt.EVT_PDU_RECV, self._count_pdu))
        self.server = self.ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = self.server.server_address[1]

    def _open(self, event: evt.Event) -> None:
        reactor_wakeup.attach(event.assoc)
        store_response.attach(event.assoc)
        pdata_receive.attach(event.assoc)
        queue = event.assoc.dul._recv_pdu  # spy: which reader produced the P-DATA-TF PDUs
        put = queue.put

        def put_and_note(pdu, *args, **kwargs):
            if type(pdu).__name__ in ("_PresentationDataPDU", "P_DATA_TF"):
                self.fast_reader.append(type(pdu).__name__ == "_PresentationDataPDU")
            return put(pdu, *args, **kwargs)

        queue.put = put_and_note

    def _count_pdu(self, event: evt.Event) -> None:
        self.pdus += 1

    def _store(self, event: evt.Event) -> int:
        self.received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


def encoded_body(ds, implicit: bool) -> bytes:
    """The data set's bytes as a sender puts them on the wire (no Part 10 header)."""
    from pydicom.filewriter import write_dataset
    from pydicom.filebase import DicomBytesIO

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_dataset(buffer, ds)
    return buffer.getvalue()


def instances(count: int) -> list:
    rng = np.random.default_rng(3)
    return [mr_image(rng.integers(0, 4096, (300, 260), dtype=np.uint16), StudyInstanceUID="1.2.3",
                     SeriesInstanceUID="1.2.3.4", InstanceNumber=i + 1) for i in range(count)]


@pytest.mark.parametrize("max_pdu,log_pdus", [(16384, False), (0, False), (16384, True)])
def test_pynetdicom_sender_data_sets_arrive_byte_for_byte(max_pdu: int, log_pdus: bool) -> None:
    acceptor = Acceptor(max_pdu, log_pdus)
    try:
        ae = AE("SENDER")
        ae.add_requested_context(MRImageStorage, ImplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", acceptor.port, ae_title="ACCEPTOR")
        assert assoc.is_established
        sent = {}
        for ds in instances(3):
            status = assoc.send_c_store(ds)
            assert int(status.Status) == 0x0000
            sent[str(ds.SOPInstanceUID)] = encoded_body(ds, implicit=True)
        assoc.release()
        assert acceptor.received == sent
        # the fast reader runs unless PDU logging handlers are bound, which need pynetdicom's own objects
        assert len(acceptor.fast_reader) > 3 * 10 if max_pdu else len(acceptor.fast_reader) >= 3
        assert set(acceptor.fast_reader) == {not log_pdus}
        assert (acceptor.pdus > 3 * 10) == log_pdus  # 16 KiB PDUs: >10 per 156 kB instance
    finally:
        acceptor.stop()


def test_dcmtk_storescu_with_small_pdus_and_several_instances(tmp_path: Path) -> None:
    storescu = require_tool("/usr/bin/storescu")
    acceptor = Acceptor(16384, False)
    try:
        paths, sent = [], {}
        for i, ds in enumerate(instances(3)):
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = tmp_path / f"{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(str(path))
            sent[str(ds.SOPInstanceUID)] = encoded_body(ds, implicit=False)
        result = subprocess.run([storescu, "-xe", "-aec", "ACCEPTOR", "127.0.0.1", str(acceptor.port), *paths],
                                env=peer_env(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert acceptor.received == sent
        assert len(acceptor.fast_reader) > 3 * 10 and all(acceptor.fast_reader)
    finally:
        acceptor.stop()

