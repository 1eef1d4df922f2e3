#!/usr/bin/env bash
# Train the light BianqueNet variant on one GPU in <= 7 minutes of wall time, reproducibly via `bianque train`.
#
#   On the dev machine (once):   bash bench/prepare_gpu_data.sh          # -> .gpu/data (git-ignored, ~30 MB)
#   On the GPU machine:          bash bench/gpu_train.sh [DATA_DIR] [OUT_DIR] [RECIPE]
#       DATA_DIR  default $BIANQUE_GPU_DATA or .gpu/data   (carry it: run(carry=[".gpu"]))
#       OUT_DIR   default $OUT (the device tool's output folder) or runs/gpu
#       RECIPE    default bench/gpu_light.toml
#   Environment: INIT=<weights file> fine-tunes from it (bianque train --init); TRAIN_TIMEOUT (seconds, default
#   480) is the hard limit of the training command (the recipe's max_minutes stops it cleanly before that).
#
# Needs only python3 with torch (CUDA), numpy and opencv-python-headless (all present on the GPU image);
# no pydicom/scipy/network. Writes to OUT_DIR: bianque-light.pt (fp16 weights + model card), eval.json,
# eval.md, train.log, train_log.jsonl, env.txt. Checkpoints stay in runs/gpu-work (resumable: rerun the script).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-${BIANQUE_GPU_DATA:-.gpu/data}}
OUT_DIR=${2:-${OUT:-runs/gpu}}
RECIPE=${3:-bench/gpu_light.toml}
WORK=runs/gpu-work
INIT_ARGS=()
if [ -n "${INIT:-}" ]; then INIT_ARGS=(--init "$INIT"); fi
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR" "$WORK"
if [ ! -f "$DATA_DIR/spider/index.json" ]; then
  echo "training data not found in $DATA_DIR (run bench/prepare_gpu_data.sh on the dev machine and carry .gpu)" >&2
  exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch, numpy, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'cv2', cv2.__version__)"
} | tee "$OUT_DIR/env.txt"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
START=$(date +%s)
timeout "${TRAIN_TIMEOUT:-480}" "$PY" -c "import sys; from dicom_node.cli import main; sys.exit(main(sys.argv[1:]))" \
  train --config "$RECIPE" --data-root "$DATA_DIR" --out "$WORK" --device cuda --quiet "${INIT_ARGS[@]}" 2>&1 \
  | tee "$OUT_DIR/train_stdout.txt" || echo "training command ended with an error (see train_stdout.txt)"
echo "wall seconds: $(( $(date +%s) - START ))" | tee -a "$OUT_DIR/env.txt"
for f in bianque-light.pt eval.json eval.md train.log train_log.jsonl; do
  [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT_DIR/"
done
ls -la "$OUT_DIR"
