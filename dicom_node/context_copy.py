"""Cheap per-association copies of the node's ~170 x 13 supported presentation contexts.

pynetdicom 3.0 gives every accepted association ``deepcopy(server.contexts)``; deep-copying
re-creates (and re-validates with a regular expression) each of the ~2,200 transfer syntax UIDs,
about 25 ms of CPU per association, which a PACS that opens one association per series or per
instance pays each time. UIDs are immutable strings, so a copy only needs new context objects
with their own transfer syntax lists: ``ContextList`` is a list whose deep copy does just that.
Version-guarded: the private ``_transfer_syntax`` list is only touched on pynetdicom 3.0.x, and
any other version gets a normal deep copy.
"""

from __future__ import annotations

import copy
from typing import Any

import pynetdicom
from pynetdicom.presentation import PresentationContext

SUPPORTED = pynetdicom.__version__.startswith("3.0.") and isinstance(
    getattr(PresentationContext(), "_transfer_syntax", None), list
)


class ContextList(list):  # type: ignore[type-arg]
    """A list of PresentationContext whose ``deepcopy`` shares the immutable UIDs."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        if not SUPPORTED:
            return [copy.deepcopy(context, memo) for context in self]
        copies = []
        for context in self:
            new = copy.copy(context)
            new._transfer_syntax = list(context._transfer_syntax)
            copies.append(new)
        return copies
