"""DIMSE status codes the node returns and interprets, by name (PS3.4 Annex B and PS3.7 Annex C)."""

from __future__ import annotations

from typing import Final

SUCCESS: Final = 0x0000

# C-STORE SCP failures we return.
OUT_OF_RESOURCES: Final = 0xA700
"""The instance could not be written to the spool (disk full, permission, I/O error)."""
CANNOT_UNDERSTAND: Final = 0xC210
"""The data set could not be decoded (non-DICOM payload, truncated data set)."""
PROCESSING_ERROR: Final = 0xC211
"""An unexpected error in the node while storing (logged with details)."""
MISSING_OR_INVALID_UID: Final = 0xC212
"""SOP Instance, Series Instance or Study Instance UID missing or not a valid UID."""
UID_MISMATCH: Final = 0xC213
"""The data set's SOP Instance/Class UID differs from the C-STORE request's Affected SOP Instance/Class UID."""

# Peer statuses we interpret when sending.
SOP_CLASS_NOT_SUPPORTED: Final = 0x0122
NOT_AUTHORIZED: Final = 0x0124
DUPLICATE_INVOCATION: Final = 0x0210
MISTYPED_ARGUMENT: Final = 0x0212
DATA_SET_DOES_NOT_MATCH_SOP_CLASS: Final = 0xA900

WARNING_STATUSES: Final = frozenset({0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007})
PERMANENT_FAILURES: Final = frozenset(
    {SOP_CLASS_NOT_SUPPORTED, NOT_AUTHORIZED, DUPLICATE_INVOCATION, MISTYPED_ARGUMENT}
)


def is_success(status: int) -> bool:
    """Success or a warning: the peer stored the instance."""
    return status == SUCCESS or status in WARNING_STATUSES


def is_permanent_failure(status: int) -> bool:
    """Failures that retrying cannot fix (the peer will never accept this object as it is)."""
    return status in PERMANENT_FAILURES or (status & 0xFF00) == 0xA900 or (status & 0xF000) == 0xC000


def describe(status: int) -> str:
    names = {
        SUCCESS: "Success",
        OUT_OF_RESOURCES: "Refused: Out of Resources",
        CANNOT_UNDERSTAND: "Error: Cannot understand",
        PROCESSING_ERROR: "Error: processing failure",
        MISSING_OR_INVALID_UID: "Error: missing or invalid UID",
        UID_MISMATCH: "Error: UID differs from request",
        SOP_CLASS_NOT_SUPPORTED: "Refused: SOP Class not supported",
        NOT_AUTHORIZED: "Refused: not authorized",
        DUPLICATE_INVOCATION: "Duplicate invocation",
        MISTYPED_ARGUMENT: "Mistyped argument",
        DATA_SET_DOES_NOT_MATCH_SOP_CLASS: "Error: data set does not match SOP Class",
    }
    if status in names:
        return names[status]
    if status in WARNING_STATUSES:
        return "Warning"
    return "Failure"
