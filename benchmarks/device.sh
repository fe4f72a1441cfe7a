#!/bin/bash
# One GPU benchmark table per call on a lent device (BENCHMARKS.md, "Reproducing the GPU tables"):
#   bash benchmarks/device.sh TABLE   (training, training-lora, generation, time-to-model, time-to-model-eager, anchors)
# The device has torch, transformers, accelerate and peft; the rest travels as wheels in .whl/ (carried),
# made by `python benchmarks/device_wheels.py` at the lock's versions.
# JSON lines go to stdout and to $OUT/<table>.jsonl. Not yet run on a device (no GPU in the session that wrote it).
set -uo pipefail
table=${1:?usage: benchmarks/device.sh TABLE (see the first lines of this file)}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
out=${OUT:-/tmp}/$table.jsonl
# Compile bundles go back through $OUT/compile-cache/ (16 MiB a file at most) for a later call to carry in as
# .compile-cache/; training and generation start from them (their JSON says compile_cache: carried).
export BOOTHLINE_BENCH_COMPILE_CACHE=${OUT:-/tmp}/compile-cache
mkdir -p "$BOOTHLINE_BENCH_COMPILE_CACHE" && { [ ! -d .compile-cache ] || cp .compile-cache/*.bin "$BOOTHLINE_BENCH_COMPILE_CACHE"/; }
case $table in  # each meant to end within 8 minutes on an H100 (estimates: not yet run)
  training)      python3 benchmarks/training.py --model sd15 --steps 150 --warmup 50 --configs unet,unet+te "${@:2}" ;;
  training-lora) python3 benchmarks/training.py --model sd15 --steps 150 --warmup 50 --configs lora "${@:2}" ;;
  generation)    python3 benchmarks/generation.py --model sd15 --batch-sizes 1,8 --images 32 --steps 25 "${@:2}" ;;
  time-to-model) python3 benchmarks/time_to_model.py --model sd15 --paths fast "${@:2}" ;;
  time-to-model-eager) python3 benchmarks/time_to_model.py --model sd15 --paths eager "${@:2}" ;;
  anchors)       bash .anchor/anchor.sh ;;  # ../shared/bench with its assets/, copied into the ignored .anchor/
  *) echo "unknown table: $table" >&2; exit 2 ;;
esac 2> >(grep -vE "(it|img|step)/s\]|s/(it|img|step)\]" >&2) | tee "$out"  # progress bars dropped
exit "${PIPESTATUS[0]}"
