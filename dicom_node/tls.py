"""SSL contexts for DICOM TLS (PS3.15 B.1), built from the configuration's PEM file paths."""

from __future__ import annotations

import ssl

from .config import TlsConfig


def server_context(settings: TlsConfig) -> ssl.SSLContext:
    """Context for the listening side: our certificate; peers verified against ``ca_file`` if required."""
    if settings.cert_file is None or settings.key_file is None:
        raise ValueError("network.tls needs cert_file and key_file to accept TLS associations")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(settings.ca_file) if settings.ca_file else None)
    context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    context.verify_mode = ssl.CERT_REQUIRED if settings.require_peer_certificate else ssl.CERT_NONE
    return context


def client_context(settings: TlsConfig, server_hostname: str) -> tuple[ssl.SSLContext, str]:
    """Context (and expected host name) for an association to a destination."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    if not settings.require_peer_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context, server_hostname
