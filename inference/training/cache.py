"""A portable sample cache: PNG images + PNG code maps + JSON index (no scipy/.mat needed to read it).

``export_cache(samples, folder)`` writes ``folder/index.json``, ``folder/tables.npy`` and one
``img_<i>.png`` / ``codes_<i>.png`` pair per sample; ``load_cache(folder)`` reads it back into the same
``Sample`` objects (source, subject, levels, partial-label and scoring tables, Dice groups). Used to carry the
training subsets of ../shared/data to a machine that only gets the repository (bench/gpu_train.sh).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from inference.training.datasets import DatasetError, Sample


def export_cache(samples: Sequence[Sample], folder: str | Path) -> int:
    """Write the samples; returns the total bytes written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tables: list[np.ndarray] = []
    index = []

    def table_id(table: np.ndarray) -> int:
        tid = next((k for k, t in enumerate(tables) if np.array_equal(t, table)), None)
        if tid is None:
            tables.append(table)
            tid = len(tables) - 1
        return tid

    for i, s in enumerate(samples):
        tid = table_id(s.table)
        cv2.imwrite(str(out / f"img_{i:05d}.png"), s.image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        cv2.imwrite(str(out / f"codes_{i:05d}.png"), s.codes, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        index.append({
            "image": f"img_{i:05d}.png", "codes": f"codes_{i:05d}.png", "table": tid,
            "groups": [list(g) for g in s.groups], "labelled": list(s.labelled), "source": s.source,
            "subject": s.subject, "name": s.name, "mid": s.mid,
            "spacing_mm": list(s.spacing_mm) if s.spacing_mm else None,
            "eval_table": None if s.eval_table is None else table_id(s.eval_table),
        })
    np.save(out / "tables.npy", np.stack(tables) if tables else np.zeros((0, 256, 14), bool))
    (out / "index.json").write_text(json.dumps(index))
    return sum(p.stat().st_size for p in out.iterdir())


def load_cache(folder: str | Path) -> list[Sample]:
    root = Path(folder)
    if not (root / "index.json").is_file():
        raise DatasetError(f"not a sample cache (index.json missing): {root}")
    tables = np.load(root / "tables.npy")
    out = []
    for e in json.loads((root / "index.json").read_text()):
        img = cv2.imread(str(root / e["image"]), cv2.IMREAD_GRAYSCALE)
        codes = cv2.imread(str(root / e["codes"]), cv2.IMREAD_GRAYSCALE)
        if img is None or codes is None:
            raise DatasetError(f"cache entry {e['name']} is unreadable")
        out.append(Sample(
            image=img, codes=codes, table=tables[e["table"]], groups=tuple(tuple(g) for g in e["groups"]),
            labelled=tuple(e["labelled"]), source=e["source"], subject=e["subject"], name=e["name"], mid=e["mid"],
            spacing_mm=tuple(e["spacing_mm"]) if e["spacing_mm"] else None,
            eval_table=None if e.get("eval_table") is None else tables[e["eval_table"]],
        ))
    return out
