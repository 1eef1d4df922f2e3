#!/usr/bin/env bash
# Copy the training subsets of ../shared/data into .gpu/data/ (git-ignored, <= 50 MB) as portable
# PNG+JSON sample caches, so that bench/gpu_train.sh can train on a machine that only gets the repo.
# Usage (repo root, on the dev machine):  bash bench/prepare_gpu_data.sh [DATA_ROOT] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${1:-../shared/data}
OUT_DIR=${2:-.gpu/data}
PY=${PYTHON:-.venv/bin/python}
"$PY" -m inference.training.export_gpu_data --data-root "$DATA_ROOT" --out "$OUT_DIR" --max-mb 50
du -sh "$OUT_DIR"
