"""Make ``import quantitation`` resolve to the package, not to this tests folder, and locate shared data.

tests/conftest.py puts tests/ on sys.path, where the folder ``tests/quantitation`` (no __init__.py) would
be picked up as a namespace package named ``quantitation`` ahead of the editable install's finder.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
_mod = sys.modules.get("quantitation")
if _mod is not None and getattr(_mod, "__file__", None) is None:
    for _name in [n for n in sys.modules if n == "quantitation" or n.startswith("quantitation.")]:
        del sys.modules[_name]

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
