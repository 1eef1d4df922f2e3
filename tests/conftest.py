"""Shared fixtures: real DICOM peers (Orthanc, DCMTK), a generated MR study, and our node.

Fixtures (all function-scoped unless noted):

- ``orthanc`` -> ``peers.OrthancPeer``: Orthanc on free loopback ports with its own storage; stopped
  afterwards. ``orthanc_session`` (session scope) is one shared instance for read-mostly tests.
- ``mr_study`` -> ``GeneratedStudy`` (tests/dicom_factory.py): sagittal T2 (7), sagittal T1 (5),
  axial T2 (4) slices, Part 10 files in a temporary folder. ``write_mr_study`` builds others.
- ``node_factory`` -> ``make(config=None, processor=None, start=True) -> RunningNode``: our node
  in-process on a free loopback port, temporary spool, quiet period 0.5 s, short retry delays.
  ``config`` is a nested dict deep-merged over the test defaults (same keys as the TOML file), e.g.
  ``make({"destinations": [orthanc_destination(orthanc)]})``. ``processor`` is a
  ``dicom_node.jobs.StudyProcessor`` (default: the node's own choice from the config). Every node
  made is stopped at teardown.
- ``running_node`` -> ``RunningNode``: ``node_factory()`` with defaults.
- ``node_config_file`` -> ``make(config=None) -> Path``: writes a TOML file with the same defaults
  (for ``bianque serve --config`` in a subprocess).

Plain helpers live in tests/peers.py (``from peers import ...``): ``orthanc_destination(orthanc,
name="orthanc", **retry)`` (a destination dict for an OrthancPeer), ``node_test_config(tmp_path,
overrides)`` (the merged config dict), ``require_tool``, ``free_port``, ``peer_env``, ``wait_for``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# Import the packages that share a name with a tests/ folder first: once tests/ is on sys.path, a bare
# `.venv/bin/pytest` (no repo root on sys.path, editable install) would resolve them to the test folders.
import inference  # noqa: E402,F401
import quantitation  # noqa: E402,F401

if str(TESTS_DIR) not in sys.path:
    sys.path.append(str(TESTS_DIR))  # appended: tests/inference etc. must not shadow the packages

from dicom_factory import GeneratedStudy, write_mr_study  # noqa: E402
from peers import (  # noqa: E402
    NODE_AET,
    OrthancPeer,
    free_port,
    node_test_config,
    orthanc_destination,
    peer_env,
    require_tool,
    wait_for,
)

__all__ = [
    "NODE_AET",
    "OrthancPeer",
    "RunningNode",
    "free_port",
    "orthanc_destination",
    "peer_env",
    "require_tool",
    "node_test_config",
    "wait_for",
    "write_mr_study",
]


# -- Orthanc -----------------------------------------------------------------------------------------
@pytest.fixture
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    peer = OrthancPeer(tmp_path_factory.mktemp("orthanc"))
    peer.start()
    try:
        yield peer
    finally:
        peer.stop(graceful=False)


@pytest.fixture(scope="session")
def orthanc_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    peer = OrthancPeer(tmp_path_factory.mktemp("orthanc-session"))
    peer.start()
    try:
        yield peer
    finally:
        peer.stop(graceful=False)


# -- generated study -----------------------------------------------------------------------------------
@pytest.fixture
def mr_study(tmp_path_factory: pytest.TempPathFactory) -> GeneratedStudy:
    return write_mr_study(tmp_path_factory.mktemp("mr-study"))


# -- our node ----------------------------------------------------------------------------------------
@dataclass
class RunningNode:
    """A node started in-process by ``node_factory``.

    Attributes: ``node`` (dicom_node.node.Node), ``config`` (NodeConfig), ``aet``, ``host``, ``port``,
    ``spool_dir``. ``index`` is the node's SpoolIndex. ``stop()`` is idempotent.
    """

    node: Any
    config: Any
    aet: str
    host: str
    port: int
    spool_dir: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def index(self) -> Any:
        return self.node.index

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.node.stop()


@pytest.fixture
def node_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningNode]]:
    from dicom_node.config import NodeConfig
    from dicom_node.node import Node

    made: list[RunningNode] = []

    def make(
        config: dict[str, Any] | None = None,
        processor: Any = None,
        start: bool = True,
    ) -> RunningNode:
        workdir = tmp_path_factory.mktemp("node")
        settings = NodeConfig.model_validate(node_test_config(workdir, config))
        node = Node(settings, processor=processor)
        handle = RunningNode(
            node=node,
            config=settings,
            aet=settings.network.ae_title,
            host="127.0.0.1",
            port=settings.network.port,
            spool_dir=Path(settings.spool.directory),
        )
        made.append(handle)
        if start:
            node.start()
        return handle

    try:
        yield make
    finally:
        for handle in reversed(made):
            handle.stop()


@pytest.fixture
def running_node(node_factory: Callable[..., RunningNode]) -> RunningNode:
    return node_factory()


@pytest.fixture
def node_config_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    from dicom_node.config import dump_toml

    def make(config: dict[str, Any] | None = None) -> Path:
        workdir = tmp_path_factory.mktemp("node-config")
        path = workdir / "bianque-node.toml"
        path.write_text(dump_toml(node_test_config(workdir, config)))
        return path

    return make
