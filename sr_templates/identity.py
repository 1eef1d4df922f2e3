"""Algorithm identity and deterministic UIDs for every output object."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import highdicom as hd
from pydicom.uid import UID

from sr_templates import codes

MANUFACTURER = "bianque-node"
# Namespace of our name-based UUIDs (fixed forever: changing it changes every derived UID)
_UID_NAMESPACE = uuid.UUID("6f1c1a52-5b0e-4c57-9d8e-2b1f3a0c9e41")


def _uuid_uid(*parts: str) -> UID:
    """``2.25.<int>`` UID of a name-based (SHA-1, RFC 4122 v5) UUID of the parts (PS3.5 B.2)."""
    name = "\x1f".join(parts)
    return UID(f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}")


@dataclass(frozen=True)
class AlgorithmInfo:
    """Identity of the model that produced the label map; written into every output.

    ``weights_sha256`` is the hex SHA-256 of the state dict file that was loaded.
    """

    name: str = "BianqueNet"
    version: str = "0"
    variant: str = "default"
    weights_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.version:
            raise ValueError("AlgorithmInfo needs a non-empty name and version")

    @property
    def software_version(self) -> str:
        """Software Versions (LO) value: ``<version>``."""
        return self.version

    @property
    def model_name(self) -> str:
        """Manufacturer's Model Name (LO, <= 64 characters)."""
        return f"{self.name} {self.variant}"[:64]

    @property
    def serial_number(self) -> str:
        """Device Serial Number: the first 16 hex digits of the weights hash (or the version)."""
        return (self.weights_sha256[:16] or self.version)[:64]

    def parameters(self) -> dict[str, str]:
        return {"variant": self.variant, "weights_sha256": self.weights_sha256 or "unknown"}

    def seg_identification(self) -> hd.AlgorithmIdentificationSequence:
        """Segmentation Algorithm Identification Sequence (name, AI family, version, parameters)."""
        return hd.AlgorithmIdentificationSequence(
            name=self.name,
            family=codes.ARTIFICIAL_INTELLIGENCE,
            version=self.version,
            source=MANUFACTURER,
            parameters=self.parameters(),
        )

    def sr_identification(self) -> hd.sr.AlgorithmIdentification:
        """TID 4019 Algorithm Identification for SR groups."""
        return hd.sr.AlgorithmIdentification(
            name=self.name,
            version=self.version,
            parameters=[f"{k}={v}" for k, v in self.parameters().items()],
        )


def device_uid(algorithm: AlgorithmInfo) -> UID:
    """Stable Device Observer UID: the same for every run of one algorithm version + weights."""
    return _uuid_uid("bianque-node device", algorithm.name, algorithm.version, algorithm.variant,
                     algorithm.weights_sha256)


def derive_uid(uid_seed: str, *parts: str) -> UID:
    """Deterministic UID (2.25.<hash>) from the caller's seed and a role name.

    The caller puts the job version in ``uid_seed`` so that re-processing the same study with the
    same job version yields the same UIDs (idempotent re-sends), and a new version yields new ones.
    """
    if not uid_seed:
        raise ValueError("uid_seed must be a non-empty string")
    return _uuid_uid("bianque-node", uid_seed, *parts)
