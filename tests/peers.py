"""Real DICOM peers for the tests: DCMTK tools, Orthanc, and free loopback ports.

Public helpers (import with ``from peers import ...``; tests/conftest.py puts this folder on sys.path):

- ``require_tool(name_or_path) -> str``: absolute path of a peer program. Skips the test when it is
  missing locally, fails it when ``CI=true`` (CI must never silently skip a peer test).
- ``free_port() -> int``: a currently free TCP port on 127.0.0.1.
- ``peer_env() -> dict[str, str]``: ``os.environ`` plus ``TCP_NODELAY=1`` (for DCMTK and Orthanc).
- ``wait_for(predicate, timeout_s, message, interval_s=0.05)``: poll with a deadline, never a bare sleep.
- ``node_test_config(tmp_path, overrides=None) -> dict``: the node configuration tests use (free
  port, spool under tmp_path, quiet period 0.5 s, processing off, senders STORESCU/ECHOSCU/ORTHANC/
  TESTSCU/FINDSCU allowed) with ``overrides`` deep-merged (same keys as the TOML file).
- ``orthanc_destination(orthanc, name="orthanc", **retry) -> dict``: a ``[[destinations]]`` entry for
  an OrthancPeer with short retry delays (``retry`` overrides max_attempts, initial_delay_s, ...).
- ``start_node_process(config_file, log_file) -> Popen``: ``bianque serve`` as a subprocess;
  ``dicom_echo(port, host, called_aet, calling_aet) -> bool`` to wait until it listens.
- ``OrthancPeer``: an Orthanc PACS on free loopback ports with its own temporary storage.
  ``start()``/``stop()`` restart it with the same storage and ports.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

T = TypeVar("T")

NODE_AET = "BIANQUE"
TEST_SENDERS = ("STORESCU", "ECHOSCU", "ORTHANC", "TESTSCU", "FINDSCU")

ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
TOOL_PACKAGES = {
    "orthanc": "orthanc",
    "storescu": "dcmtk",
    "echoscu": "dcmtk",
    "storescp": "dcmtk",
    "findscu": "dcmtk",
    "dciodvfy": "dicom3tools",
}


def require_tool(name_or_path: str) -> str:
    """Return the absolute path of a peer program, or skip (locally) / fail (CI=true) the test.

    ``name_or_path`` is an absolute path (``/usr/bin/storescu``), a bare program name looked up on
    PATH, or ``"Orthanc"`` (looked up in /usr/sbin and /usr/bin).
    """
    candidates: list[str] = []
    if os.path.isabs(name_or_path):
        candidates.append(name_or_path)
    elif name_or_path.lower() == "orthanc":
        candidates.extend(ORTHANC_CANDIDATES)
    else:
        # Debian locations first: the venv's pynetdicom apps must not shadow DCMTK's programs.
        candidates.extend([f"/usr/bin/{name_or_path}", f"/usr/sbin/{name_or_path}"])
        found = shutil.which(name_or_path)
        if found:
            candidates.append(found)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    base = os.path.basename(name_or_path)
    package = TOOL_PACKAGES.get(base.lower(), TOOL_PACKAGES.get(base, "?"))
    message = f"DICOM peer {name_or_path!r} not found (Debian package {package!r}: apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " -- required when CI=true", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pragma: no cover


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peer_env(**extra: str) -> dict[str, str]:
    """Environment for DCMTK and Orthanc processes: the current one plus TCP_NODELAY=1."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    env.update(extra)
    return env


def wait_for(
    predicate: Callable[[], T],
    timeout_s: float,
    message: str,
    interval_s: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``message`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error on timeout
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            pytest.fail(f"timed out after {timeout_s:.1f} s: {message}{detail}", pytrace=False)
        time.sleep(interval_s)


class OrthancPeer:
    """An Orthanc server on loopback, with its own storage, configuration and log in ``workdir``.

    Accepts associations from any calling AE (no called-AE check, store and echo from unknown SCUs);
    modalities registered with :meth:`register_modality` are kept in its database, so they survive
    :meth:`stop` / :meth:`start`.
    """

    def __init__(self, workdir: Path, aet: str = "ORTHANC", executable: str | None = None) -> None:
        self.executable = executable or require_tool("Orthanc")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.aet = aet
        self.host = "127.0.0.1"
        self.dicom_port = free_port()
        self.http_port = free_port()
        while self.http_port == self.dicom_port:
            self.http_port = free_port()
        self.url = f"http://{self.host}:{self.http_port}"
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()
        self._write_config()

    # -- lifecycle ---------------------------------------------------------------------------------
    def _write_config(self) -> None:
        config = {
            "Name": f"bianque-test-{self.dicom_port}",
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.storage_dir),
            "HttpPort": self.http_port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "UnknownSopClassAccepted": True,
            "DicomModalities": {},
            "DicomModalitiesInDatabase": True,
            "DicomScuTimeout": 10,
            "Plugins": [],
            "StableAge": 2,
            "ConcurrentJobs": 1,
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 20.0) -> None:
        """Start (or restart) Orthanc with the same storage and ports; wait until REST answers."""
        if self.running:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self._process = subprocess.Popen(
                [self.executable, str(self.config_path)],
                cwd=self.workdir,
                env=peer_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self._process.returncode}; log:\n{self.log_tail()}")
            try:
                if self._http.get(f"{self.url}/system", timeout=1).ok and self._dicom_listening():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on {self.url}/system within {timeout_s} s; log:\n{self.log_tail()}")

    def _dicom_listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.dicom_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 15.0, graceful: bool = True) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL after ``timeout_s``); storage is kept.

        ``graceful=False`` kills at once (fast teardown; Orthanc takes ~3 s to stop cleanly).
        """
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- REST helpers ------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        response = self._http.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        response = self._http.post(f"{self.url}{path}", data=data, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else None

    def instances(self) -> list[str]:
        """SOP Instance UIDs of every instance stored in Orthanc."""
        expanded = self.get("/instances?expand")
        return [item["MainDicomTags"]["SOPInstanceUID"] for item in expanded]

    def _lookup(self, uid: str, resource_type: str) -> str | None:
        for hit in self.post("/tools/lookup", uid) or []:
            if hit.get("Type") == resource_type:
                return str(hit["ID"])
        return None

    def find_instance(self, sop_uid: str) -> dict[str, Any] | None:
        """Orthanc's description of the instance with this SOP Instance UID (``/instances/{id}``), or None.

        The dict has ``ID``, ``MainDicomTags`` (incl. SOPInstanceUID), ``ParentSeries`` and
        ``SOPClassUID`` (from Orthanc's metadata).
        """
        orthanc_id = self._lookup(sop_uid, "Instance")
        if orthanc_id is None:
            return None
        info = dict(self.get(f"/instances/{orthanc_id}"))
        info["SOPClassUID"] = self._sop_class(orthanc_id)
        return info

    def _sop_class(self, orthanc_id: str) -> str | None:
        response = self._http.get(f"{self.url}/instances/{orthanc_id}/metadata/SopClassUid", timeout=30)
        return response.text.strip() if response.ok else None

    def instance_file(self, sop_uid: str) -> bytes:
        """The stored DICOM file (Part 10 bytes) of an instance, by SOP Instance UID."""
        orthanc_id = self._lookup(sop_uid, "Instance")
        if orthanc_id is None:
            raise KeyError(f"instance {sop_uid} is not in Orthanc")
        response = self._http.get(f"{self.url}/instances/{orthanc_id}/file", timeout=60)
        response.raise_for_status()
        return response.content

    def study_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """Every instance of a study: dicts with ``ID`` and ``MainDicomTags``.

        ``MainDicomTags`` holds the instance tags (SOPInstanceUID, InstanceNumber, ...) plus the
        series' ``Modality``, ``SeriesInstanceUID``, ``SeriesDescription`` and ``SOPClassUID``.
        """
        study_id = self._lookup(study_uid, "Study")
        if study_id is None:
            return []
        result: list[dict[str, Any]] = []
        for series in self.get(f"/studies/{study_id}/series"):
            series_tags = series.get("MainDicomTags", {})
            for instance in self.get(f"/series/{series['ID']}/instances"):
                tags = dict(instance.get("MainDicomTags", {}))
                for key in ("Modality", "SeriesInstanceUID", "SeriesDescription", "SeriesNumber"):
                    if key in series_tags:
                        tags.setdefault(key, series_tags[key])
                sop_class = self._sop_class(instance["ID"])
                if sop_class:
                    tags.setdefault("SOPClassUID", sop_class)
                result.append({"ID": instance["ID"], "MainDicomTags": tags})
        return result

    def register_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Declare a DICOM modality (e.g. our node) that Orthanc may send to (``PUT /modalities/{name}``)."""
        body = {"AET": aet, "Host": host, "Port": int(port), "AllowEcho": True, "AllowStore": True}
        response = self._http.put(f"{self.url}/modalities/{name}", data=json.dumps(body), timeout=30)
        response.raise_for_status()

    def store_to_modality(self, name: str, resources: list[str]) -> Any:
        """C-STORE Orthanc resources (Orthanc IDs or UIDs) to a registered modality, synchronously."""
        return self.post(f"/modalities/{name}/store", {"Resources": list(resources), "Synchronous": True})

    def upload(self, path: str | os.PathLike[str]) -> str:
        """Upload a DICOM file through REST; returns its Orthanc instance ID."""
        reply = self.post("/instances", Path(path).read_bytes())
        return str(reply["ID"])

    def __repr__(self) -> str:
        return f"OrthancPeer(aet={self.aet!r}, dicom_port={self.dicom_port}, url={self.url!r})"


# -- node configuration for tests ----------------------------------------------------------------
def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def orthanc_destination(orthanc: OrthancPeer, name: str = "orthanc", **retry: Any) -> dict[str, Any]:
    """A destination entry (config dict) pointing at an OrthancPeer, with short test retry delays."""
    policy = {"max_attempts": 20, "initial_delay_s": 0.2, "max_delay_s": 1.0, "multiplier": 2.0, "jitter": 0.1}
    policy.update(retry)
    return {"name": name, "ae_title": orthanc.aet, "host": orthanc.host, "port": orthanc.dicom_port, "retry": policy}


def node_test_config(tmp_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The node configuration used by tests (a dict with the TOML file's keys), with overrides merged."""
    base: dict[str, Any] = {
        "network": {
            "ae_title": NODE_AET,
            "bind_address": "127.0.0.1",
            "port": free_port(),
            "acse_timeout_s": 10,
            "dimse_timeout_s": 20,
            "network_timeout_s": 20,
        },
        "allowed_senders": [{"ae_title": aet} for aet in TEST_SENDERS],
        "destinations": [],
        "spool": {"directory": str(tmp_path / "spool"), "retention_days": 30},
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.2},
        "model": {"weights": "default", "device": "cpu", "cpu_threads": 1},
        "processing": {"enabled": False},
        "logging": {"format": "console", "level": "INFO"},
    }
    return _deep_merge(base, overrides or {})


# -- our node as a subprocess ------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parent.parent


def start_node_process(config_file: Path, log_file: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``bianque serve --config FILE`` (this interpreter) with stdout+stderr appended to ``log_file``.

    Wait for it with ``wait_for(lambda: dicom_echo(port), ...)``; stop it with SIGTERM (clean) or SIGKILL.
    """
    import sys

    log = open(log_file, "ab")  # noqa: SIM115 - handed to the child process
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dicom_node.cli", "serve", "--config", str(config_file)],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    finally:
        log.close()


def dicom_echo(port: int, host: str = "127.0.0.1", called_aet: str = NODE_AET, calling_aet: str = "TESTSCU") -> bool:
    """True if a C-ECHO (pynetdicom) to ``host:port`` succeeds."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called_aet)
    if not assoc.is_established:
        return False
    try:
        rsp = assoc.send_c_echo()
        return bool(rsp) and "Status" in rsp and int(rsp.Status) == 0
    finally:
        assoc.release()
