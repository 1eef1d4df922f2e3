"""C-STORE and C-ECHO SCP: accept allowed senders, write every instance durably, index it, return.

The handlers only write the spool file and one index row and then notify the node (which
(re)schedules the series' quiet timer); all heavy work happens on worker threads.

A C-STORE request normally never reaches pynetdicom's service classes: the association's store lane
(store_lane, fed by pdata_receive on the thread that reads the socket) collects it and calls
``store_from_lane``; requests the lane leaves to pynetdicom (for example while DEBUG logging binds
pynetdicom's message log handlers) arrive at ``handle_store``. Both end in ``_store_safely``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from . import pdata_receive, reactor_wakeup, status_codes, store_response
from .config import NodeConfig
from .context_copy import ContextList
from .header_scan import scan_header
from .headers import InstanceHeader, UndecodableDataset, read_header
from .index import SpoolIndex, StoreResult
from .part10 import file_header
from .spool import instance_path, rename_is_journaled, store_instance
from .store_lane import StoreLane
from .tls import server_context
from .transfer_syntaxes import ACCEPTED_TRANSFER_SYNTAXES, storage_sop_classes
from .uids import InvalidUID

log = structlog.get_logger("dicom_node.receiver")

InstanceListener = Callable[[InstanceHeader, StoreResult], None]


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


class Receiver:
    """The association acceptor of the node."""

    def __init__(self, config: NodeConfig, index: SpoolIndex, on_instance: InstanceListener | None = None) -> None:
        self.config = config
        self.index = index
        self.spool_dir = Path(config.spool.directory)
        self.on_instance = on_instance
        self._journaled = rename_is_journaled(self.spool_dir)
        self._server: ThreadedAssociationServer | None = None
        self._ae: AE | None = None

    # -- set-up ------------------------------------------------------------------------------------
    def build_ae(self) -> AE:
        network = self.config.network
        # pynetdicom's standard event handlers build log lines for every PDU and DIMSE message (and
        # copy each received data set to see whether it is empty); they are only worth binding when
        # the pynetdicom logger shows INFO (logs.configure_logging keeps it at WARNING unless DEBUG).
        pynetdicom_logs = logging.getLogger("pynetdicom").isEnabledFor(logging.INFO)
        pynetdicom_config.LOG_HANDLER_LEVEL = "standard" if pynetdicom_logs else "none"
        ae = AE(ae_title=network.ae_title)
        ae.acse_timeout = network.acse_timeout_s
        ae.dimse_timeout = network.dimse_timeout_s
        ae.network_timeout = network.network_timeout_s
        ae.maximum_associations = network.max_associations
        ae.maximum_pdu_size = network.max_pdu_bytes
        ae.require_called_aet = False
        ae.add_supported_context(Verification)
        for sop_class in storage_sop_classes():
            ae.add_supported_context(sop_class, list(ACCEPTED_TRANSFER_SYNTAXES))
        return ae

    def start(self) -> ThreadedAssociationServer:
        network = self.config.network
        ssl_context = server_context(network.tls) if network.tls.enabled else None
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, self.handle_connection_open),
            (evt.EVT_CONN_CLOSE, self.handle_connection_close),
            (evt.EVT_REQUESTED, self.handle_requested),
            (evt.EVT_ACCEPTED, self.handle_accepted),
            (evt.EVT_RELEASED, self.handle_released),
            (evt.EVT_ABORTED, self.handle_aborted),
            (evt.EVT_C_ECHO, self.handle_echo),
            (evt.EVT_C_STORE, self.handle_store),
        ]
        self._ae = self.build_ae()
        self._server = self._ae.start_server(
            (network.bind_address, network.port), block=False, evt_handlers=handlers, ssl_context=ssl_context
        )
        self._server.contexts = ContextList(self._server.contexts)  # cheap copy per association
        log.info("listening", ae_title=network.ae_title, address=network.bind_address, port=self.port,
                 tls=network.tls.enabled)
        return self._server

    @property
    def port(self) -> int:
        if self._server is None:
            return self.config.network.port
        return int(self._server.server_address[1])

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop listening, let associations in progress finish (up to ``grace_s``), then abort the rest."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        log.info("stopped listening", ae_title=self.config.network.ae_title)
        ae = self._ae
        if ae is None:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(a.is_acceptor for a in ae.active_associations):
            time.sleep(0.05)
        for assoc in ae.active_associations:
            if assoc.is_acceptor:
                log.warning("aborting association still open at shutdown", **self._peer_of(assoc))
                assoc.abort()

    # -- association events ------------------------------------------------------------------------
    @staticmethod
    def _peer(event: evt.Event) -> dict[str, Any]:
        return Receiver._peer_of(event.assoc)

    @staticmethod
    def _peer_of(assoc: Any) -> dict[str, Any]:
        requestor = assoc.requestor
        calling = requestor.ae_title
        primitive = getattr(requestor, "primitive", None)
        if not calling and primitive is not None:  # not yet copied from the A-ASSOCIATE-RQ at EVT_REQUESTED
            calling = primitive.calling_ae_title
        if isinstance(calling, bytes):
            calling = calling.decode("ascii", "replace")
        return {"calling_ae": str(calling or "").strip(), "address": requestor.address, "port": requestor.port}

    def handle_connection_open(self, event: evt.Event) -> None:
        assoc = event.assoc
        reactor_wakeup.attach(assoc)  # TCP_NODELAY; the DUL thread waits on the socket, not in sleeps
        store_response.attach(assoc)  # plain C-STORE responses sent pre-encoded
        # P-DATA fragments read without copies; C-STORE requests answered on the DUL thread
        pdata_receive.attach(assoc, lane=StoreLane(assoc, self.store_from_lane))

    @staticmethod
    def handle_connection_close(event: evt.Event) -> None:
        reactor_wakeup.detach(event.assoc)

    def handle_requested(self, event: evt.Event) -> None:
        peer = self._peer(event)
        if not self.config.sender_allowed(peer["calling_ae"], str(peer["address"])):
            log.warning("association rejected: unknown sender", **peer,
                        hint="add the AE title (and address) to [[allowed_senders]]")
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)  # rejected-permanent, calling AE not recognised
            event.assoc.kill()  # waits until the A-ASSOCIATE-RJ went out and the peer closed

    def handle_accepted(self, event: evt.Event) -> None:
        log.info("association accepted", **self._peer(event))

    def handle_released(self, event: evt.Event) -> None:
        log.info("association released", **self._peer(event))

    def handle_aborted(self, event: evt.Event) -> None:
        log.warning("association aborted", **self._peer(event))

    def handle_echo(self, event: evt.Event) -> int:
        log.info("c-echo", **self._peer(event))
        return status_codes.SUCCESS

    # -- C-STORE -----------------------------------------------------------------------------------
    def handle_store(self, event: evt.Event) -> int | Dataset:
        """EVT_C_STORE: the requests the store lane leaves to pynetdicom (e.g. while DEBUG logging is on)."""
        request = event.request
        with request.DataSet.getbuffer() as body:  # a view, not a copy, of pynetdicom's buffer
            return self._store_safely(body, str(request.AffectedSOPClassUID or "").strip(),
                                      str(request.AffectedSOPInstanceUID or "").strip(),
                                      str(event.context.transfer_syntax), self._peer(event))

    def store_from_lane(self, body: bytes | memoryview, sop_class: str, sop_instance: str, transfer_syntax: str,
                        assoc: Any) -> tuple[int, str | None]:
        """The store lane's store function (store_lane.StoreFunction): (status, error comment)."""
        result = self._store_safely(body, sop_class.strip(), sop_instance.strip(), transfer_syntax,
                                    self._peer_of(assoc))
        if isinstance(result, Dataset):
            return int(result.Status), result.get("ErrorComment")
        return int(result), None

    def _store_safely(self, body: bytes | memoryview, requested_class: str, requested_sop: str, transfer_syntax: str,
                      peer: dict[str, Any]) -> int | Dataset:
        """Store one received data set (as received, never decoded and re-encoded); a status, never an exception."""
        try:
            return self._store_body(body, file_header(requested_class, requested_sop, transfer_syntax),
                                    transfer_syntax, requested_sop, requested_class, peer)
        except Exception as exc:  # noqa: BLE001 - a status, never an exception, goes back to the peer
            log.exception("c-store failed unexpectedly", **peer)
            return _failure(status_codes.PROCESSING_ERROR, f"node error: {type(exc).__name__}")

    def _store_body(self, body: bytes | memoryview, prefix: bytes, transfer_syntax: str, requested_sop: str,
                    requested_class: str, peer: dict[str, Any]) -> int | Dataset:
        try:
            header = scan_header(body, transfer_syntax) or read_header(prefix + bytes(body))
        except UndecodableDataset as exc:
            log.warning("c-store rejected: cannot decode data set", **peer, sop_instance_uid=requested_sop[:64],
                        error=str(exc)[:200])
            return _failure(status_codes.CANNOT_UNDERSTAND, "data set cannot be decoded")
        except InvalidUID as exc:
            log.warning("c-store rejected: invalid UID", **peer, sop_instance_uid=requested_sop[:64], error=str(exc))
            return _failure(status_codes.MISSING_OR_INVALID_UID, str(exc))
        if header.sop_instance_uid != requested_sop or header.sop_class_uid != requested_class:
            log.warning("c-store rejected: UIDs differ from request", **peer, sop_instance_uid=header.sop_instance_uid,
                        requested_sop_instance_uid=requested_sop[:64])
            return _failure(status_codes.UID_MISMATCH, "SOP UIDs differ from the request")
        uids = {
            "study_uid": header.study_instance_uid,
            "series_uid": header.series_instance_uid,
            "sop_instance_uid": header.sop_instance_uid,
        }
        if self.index.has_instance(header.sop_instance_uid):
            log.info("instance already stored (duplicate)", **peer, **uids)
            return status_codes.SUCCESS
        path = instance_path(self.spool_dir, header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid)
        try:
            store_instance(path, (prefix, body), journaled=self._journaled)
        except OSError as exc:
            log.error("c-store refused: cannot write to spool", **peer, **uids, path=str(path), error=str(exc),
                      hint="check free space and permissions of spool.directory")
            return _failure(status_codes.OUT_OF_RESOURCES, "cannot write to spool")
        try:
            result = self.index.record_instance(header, path, peer["calling_ae"])
        except Exception as exc:  # noqa: BLE001 - sqlite errors (disk full, locked) are resource problems
            log.error("c-store refused: cannot update index", **peer, **uids, error=str(exc))
            return _failure(status_codes.OUT_OF_RESOURCES, "cannot update spool index")
        log.info("instance stored", **peer, **uids, sop_class_uid=header.sop_class_uid, new_series=result.new_series,
                 late=result.reopened_series, transfer_syntax=header.transfer_syntax_uid)
        if self.on_instance is not None:
            try:
                self.on_instance(header, result)
            except Exception:  # noqa: BLE001 - the instance is safely stored; completion re-arms on restart
                log.exception("could not schedule series completion", **uids)
        return status_codes.SUCCESS
