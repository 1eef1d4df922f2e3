#!/usr/bin/env bash
# One prepared device call for a lent GPU (issue 3 latency targets; with GPU_TRAIN=1 also the issue 6 GPU fine-tune):
#
#   On the dev machine:  bash bench/prepare_gpu_data.sh           # -> .gpu/data (git-ignored; only for GPU_TRAIN=1)
#                        pip download --no-deps -d .whl pydicom==3.0.2  # the GPU image has no pydicom (git-ignored)
#   Device call:         run(command="bash bench/gpu_session.sh", carry=[".whl"], timeout_s=595)
#                        (with GPU_TRAIN=1: command="GPU_TRAIN=1 bash bench/gpu_session.sh", carry=[".gpu", ".whl"])
#
# 1. bench/gpu_inference.py with a hard budget (INFER_BUDGET_S, default 420 s, 200 s with GPU_TRAIN=1)
#    -> $OUT/infer.txt, gpu_inference.json
# 2. only with GPU_TRAIN=1: bench/gpu_train.sh fine-tuning the shipped light weights with
#    inference/training/recipes/light-finetune-gpu.toml (TRAIN_TIMEOUT, default 330 s) -> $OUT/bianque-light.pt, ...
#    (runs 5 and 6 showed that more training on the same subjects does not move the held-out discs, so the
#    default spends the lease on the inference targets)
# Each part has its own time limit so that one overrun cannot take the other's results with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-runs/gpu-session}
mkdir -p "$OUT_DIR"
export TCP_NODELAY=1 OUT="$OUT_DIR"
PY=${PYTHON:-python3}
if ls .whl/*.whl > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
START=$(date +%s)
if [ "${GPU_TRAIN:-0}" = 1 ]; then BUDGET=${INFER_BUDGET_S:-200}; else BUDGET=${INFER_BUDGET_S:-420}; fi
timeout $(( BUDGET + 40 )) "$PY" bench/gpu_inference.py --budget-s "$BUDGET" > "$OUT_DIR/infer.txt" 2>&1
echo "inference bench: rc $? after $(( $(date +%s) - START )) s"
tail -24 "$OUT_DIR/infer.txt"
[ "${GPU_TRAIN:-0}" = 1 ] || exit 0
INIT=${INIT:-inference/weights/bianque-light.pt} TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-330} \
  bash bench/gpu_train.sh .gpu/data "$OUT_DIR" inference/training/recipes/light-finetune-gpu.toml > "$OUT_DIR/train_session.txt" 2>&1
echo "training: rc $? after $(( $(date +%s) - START )) s"
tail -25 "$OUT_DIR/train_session.txt"
