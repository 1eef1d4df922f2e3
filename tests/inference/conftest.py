"""Make ``import inference`` resolve to the package, not to this tests folder.

tests/conftest.py puts tests/ on sys.path, where the folder ``tests/inference`` (no __init__.py) would
be picked up as a namespace package named ``inference`` ahead of the editable install's finder.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
_mod = sys.modules.get("inference")
if _mod is not None and getattr(_mod, "__file__", None) is None:
    for _name in [n for n in sys.modules if n == "inference" or n.startswith("inference.")]:
        del sys.modules[_name]
