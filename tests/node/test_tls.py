"""DICOM TLS: receiving from a TLS client (client certificate required) and sending to a TLS peer."""

from __future__ import annotations

import ssl
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from peers import free_port, wait_for

TLS = Path(__file__).resolve().parent / "tls"


def _tls_config() -> dict[str, object]:
    return {"enabled": True, "cert_file": str(TLS / "node.crt"), "key_file": str(TLS / "node.key"),
            "ca_file": str(TLS / "ca.crt"), "require_peer_certificate": True}


def _client_context(with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(TLS / "ca.crt"))
    if with_cert:
        context.load_cert_chain(str(TLS / "peer.crt"), str(TLS / "peer.key"))
    return context


def test_node_accepts_tls_clients_with_a_certificate(node_factory, mr_study) -> None:
    node = node_factory({"network": {"tls": _tls_config()}})
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", node.port, ae_title=node.aet, tls_args=(_client_context(True), "localhost"))
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(pydicom.dcmread(mr_study.series[0].files[0])).Status == 0
    finally:
        assoc.release()
    assert node.index.has_instance(mr_study.series[0].sop_uids[0])
    # without a client certificate the TLS handshake fails: no association
    refused = AE(ae_title="TESTSCU")
    refused.add_requested_context(Verification)
    refused.network_timeout = 5
    refused.acse_timeout = 5
    assoc = refused.associate("127.0.0.1", node.port, ae_title=node.aet, tls_args=(_client_context(False), "localhost"))
    assert not assoc.is_established
    # plain DICOM to a TLS port gets nowhere either
    assoc = refused.associate("127.0.0.1", node.port, ae_title=node.aet)
    assert not assoc.is_established


def test_node_sends_to_a_tls_destination(node_factory, mr_study) -> None:
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(TLS / "ca.crt"))
    server_context.load_cert_chain(str(TLS / "peer.crt"), str(TLS / "peer.key"))
    server_context.verify_mode = ssl.CERT_REQUIRED
    peer = AE(ae_title="TLSPACS")
    peer.add_supported_context(Verification)
    peer.add_supported_context(MRImageStorage, ExplicitVRLittleEndian)
    port = free_port()
    server = peer.start_server(("127.0.0.1", port), block=False, ssl_context=server_context,
                               evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        destination = {"name": "tlspacs", "ae_title": "TLSPACS", "host": "localhost", "port": port,
                       "tls": {"enabled": True, "cert_file": str(TLS / "node.crt"), "key_file": str(TLS / "node.key"),
                               "ca_file": str(TLS / "ca.crt")},
                       "retry": {"max_attempts": 3, "initial_delay_s": 0.1, "max_delay_s": 0.2}}
        node = node_factory({"destinations": [destination]})
        job_id = node.node.enqueue_send(list(mr_study.series[0].files[:2]))
        job = wait_for(lambda: (j := node.index.job(job_id)).state in ("done", "failed") and j, 20, "TLS send done")
        assert job.state == "done", job.last_error
        assert received == list(mr_study.series[0].sop_uids[:2])
    finally:
        server.shutdown()
