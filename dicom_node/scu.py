"""Associations to configured destinations: C-ECHO, and C-STORE of a job's files with every status checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
import structlog
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from . import status_codes
from .config import Destination, NodeConfig
from .tls import client_context

log = structlog.get_logger("dicom_node.scu")

MAX_CONTEXTS = 128


@dataclass(frozen=True)
class SendOutcome:
    """Result of one attempt to send a job's files to one destination."""

    ok: bool
    permanent: bool
    status: str
    """The last DIMSE status as hex (``0x0000``), or a short word for network failures."""
    error: str | None
    sent: int


@dataclass(frozen=True)
class EchoOutcome:
    ok: bool
    message: str


def _application_entity(config: NodeConfig, destination: Destination) -> AE:
    ae = AE(ae_title=destination.calling_ae_title or config.network.ae_title)
    ae.acse_timeout = config.network.acse_timeout_s
    ae.dimse_timeout = config.network.dimse_timeout_s
    ae.network_timeout = config.network.network_timeout_s
    return ae


def _associate(ae: AE, destination: Destination) -> Association:
    tls_args = client_context(destination.tls, destination.host) if destination.tls.enabled else None
    return ae.associate(destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args)


def _where(destination: Destination) -> str:
    return f"{destination.ae_title}@{destination.host}:{destination.port}"


def _association_failure(assoc: Association, destination: Destination) -> str:
    if assoc.is_rejected:
        return f"association rejected by {_where(destination)} (check that it knows our AE title and address)"
    if assoc.acceptor.primitive is not None:  # the peer answered, then the association was aborted
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            return f"{_where(destination)} accepted none of the proposed SOP classes / transfer syntaxes"
        return f"association aborted by {_where(destination)}"
    return f"cannot connect to {_where(destination)} (is it running? check host, port and firewall)"


def _contexts_refused(assoc: Association) -> bool:
    return assoc.acceptor.primitive is not None and bool(assoc.rejected_contexts) and not assoc.accepted_contexts


def echo(config: NodeConfig, destination: Destination) -> EchoOutcome:
    """C-ECHO a destination; the message says what worked or what to check."""
    ae = _application_entity(config, destination)
    ae.add_requested_context(Verification)
    assoc = _associate(ae, destination)
    if not assoc.is_established:
        return EchoOutcome(False, _association_failure(assoc, destination))
    try:
        rsp = assoc.send_c_echo()
    finally:
        assoc.release()
    if not rsp or "Status" not in rsp:
        return EchoOutcome(False, f"no C-ECHO response from {_where(destination)} (timeout or abort)")
    status = int(rsp.Status)
    if status != status_codes.SUCCESS:
        return EchoOutcome(False, f"C-ECHO status 0x{status:04X} from {_where(destination)}")
    return EchoOutcome(True, f"C-ECHO to {_where(destination)} succeeded")


@dataclass(frozen=True)
class _FileInfo:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: UID


def _file_info(path: Path) -> _FileInfo:
    meta = read_file_meta_info(path)
    return _FileInfo(
        path=path,
        sop_class_uid=str(meta.MediaStorageSOPClassUID),
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID),
        transfer_syntax=UID(str(meta.TransferSyntaxUID)),
    )


SR_CLASS_BY_KIND: dict[str, str] = {
    "enhanced": "1.2.840.10008.5.1.4.1.1.88.22",
    "comprehensive": "1.2.840.10008.5.1.4.1.1.88.33",
    "comprehensive3d": "1.2.840.10008.5.1.4.1.1.88.34",
}


def files_for_destination(files: Sequence[_FileInfo], sr_kind: str) -> list[_FileInfo]:
    """Drop the SRs of other kinds when the job holds one of the kind this destination reads
    (the pipeline writes the same report once per SR kind the destinations ask for)."""
    wanted = SR_CLASS_BY_KIND.get(sr_kind)
    if wanted is None or not any(f.sop_class_uid == wanted for f in files):
        return list(files)
    others = set(SR_CLASS_BY_KIND.values()) - {wanted}
    return [f for f in files if f.sop_class_uid not in others]


def store_files(config: NodeConfig, destination: Destination, paths: Sequence[Path], job_id: int | None = None) -> SendOutcome:
    """Send ``paths`` over one association; stop at the first failure.

    Failures the peer will never accept (SOP class or transfer syntax refused, 0x0122, 0xA9xx,
    0xCxxx) are ``permanent``; network failures, empty responses and other statuses are transient.
    """
    bound = log.bind(job_id=job_id, destination=destination.name, called_ae=destination.ae_title,
                     host=destination.host, port=destination.port)
    try:
        files = files_for_destination([_file_info(Path(p)) for p in paths], destination.sr_kind)
    except (OSError, pydicom.errors.InvalidDicomError, AttributeError) as exc:
        return SendOutcome(False, True, "unreadable", f"a result file cannot be read: {exc}", 0)
    if not files:
        return SendOutcome(True, False, "0x0000", None, 0)
    ae = _application_entity(config, destination)
    requested: dict[str, list[UID]] = {}
    for info in files:
        syntaxes = requested.setdefault(info.sop_class_uid, [])
        for ts in (info.transfer_syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if ts not in syntaxes:
                syntaxes.append(ts)
    if len(requested) > MAX_CONTEXTS:
        return SendOutcome(False, True, "too-many-classes", "more than 128 SOP classes in one job", 0)
    for sop_class, syntaxes in requested.items():
        ae.add_requested_context(sop_class, syntaxes)
    assoc = _associate(ae, destination)
    if not assoc.is_established:
        error = _association_failure(assoc, destination)
        bound.warning("send failed: no association", error=error)
        if _contexts_refused(assoc):
            return SendOutcome(False, True, f"0x{status_codes.SOP_CLASS_NOT_SUPPORTED:04X}", error, 0)
        return SendOutcome(False, False, "rejected" if assoc.is_rejected else "no-connection", error, 0)
    sent = 0
    try:
        accepted = {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}
        for info in files:
            uids = {"sop_instance_uid": info.sop_instance_uid, "sop_class_uid": info.sop_class_uid}
            if not any(sop == info.sop_class_uid for sop, _ in accepted):
                error = f"{_where(destination)} does not accept SOP class {info.sop_class_uid}"
                bound.error("send failed: SOP class refused", **uids)
                return SendOutcome(False, True, f"0x{status_codes.SOP_CLASS_NOT_SUPPORTED:04X}", error, sent)
            if (info.sop_class_uid, str(info.transfer_syntax)) in accepted:
                payload: Path | pydicom.Dataset = info.path
            elif not info.transfer_syntax.is_compressed:
                payload = pydicom.dcmread(info.path)  # pynetdicom re-encodes uncompressed data as accepted
            else:
                error = f"{_where(destination)} does not accept transfer syntax {info.transfer_syntax}"
                return SendOutcome(False, True, "transfer-syntax", error, sent)
            rsp = assoc.send_c_store(payload)
            if not rsp or "Status" not in rsp:
                error = f"no C-STORE response from {_where(destination)} (timeout, abort or invalid reply)"
                bound.warning("send failed: no response", **uids)
                return SendOutcome(False, False, "no-response", error, sent)
            status = int(rsp.Status)
            status_hex = f"0x{status:04X}"
            if not status_codes.is_success(status):
                comment = str(rsp.get("ErrorComment", "") or "")
                permanent = status_codes.is_permanent_failure(status)
                error = f"{_where(destination)} answered {status_hex} ({status_codes.describe(status)}) {comment}".strip()
                bound.warning("send failed: status", **uids, status=status_hex, permanent=permanent)
                return SendOutcome(False, permanent, status_hex, error, sent)
            sent += 1
            bound.debug("instance sent", **uids, status=status_hex)
    finally:
        if assoc.is_established:
            assoc.release()
    return SendOutcome(True, False, "0x0000", None, sent)
