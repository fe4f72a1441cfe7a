#!/bin/bash
# One GPU benchmark table per call on a lent device (BENCHMARKS.md, "Reproducing the GPU tables"):
#   bash benchmarks/device.sh training|generation|time-to-model
# The device has torch, transformers, accelerate and peft; the rest travels as wheels in .whl/ (carried).
# JSON lines go to stdout and to $OUT/<table>.jsonl. Not yet run on a device (no GPU in the session that wrote it).
set -uo pipefail
table=${1:?usage: benchmarks/device.sh training|generation|time-to-model}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
out=${OUT:-/tmp}/$table.jsonl
case $table in
  training)      python3 benchmarks/training.py --model sd15 --steps 150 --warmup 50 "${@:2}" ;;
  generation)    python3 benchmarks/generation.py --model sd15 --batch-sizes 1,8 --images 32 --steps 25 "${@:2}" ;;
  time-to-model) python3 benchmarks/time_to_model.py --model sd15 "${@:2}" ;;
  *) echo "unknown table: $table" >&2; exit 2 ;;
esac 2> >(grep -vE "it/s\]|img/s\]|step/s\]" >&2) | tee "$out"
exit "${PIPESTATUS[0]}"
