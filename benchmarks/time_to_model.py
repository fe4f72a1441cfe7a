"""Time to a personalised model on the DreamBooth paper's recipe, end to end: one JSON line per run.

    python benchmarks/time_to_model.py [--model tiny|sd15] [--class-images 200] [--steps 1000] [--paths eager,fast]

Each run is a fresh project where `python -m stages.validate`, `stages.priors` (the class images) and
`stages.train` (UNet, batch 1 + 1, then the model saved) run as separate processes, exactly as `dvc repro`
runs them; wall time counts everything: process start, model loading, compiling, rendering, training and
saving. The `fast` path compiles (priors and training) and trains on bf16 compute copies; it runs twice:
`cold` with empty compile caches, then `warm` in another fresh project that gets only the portable cache
bundle the cold run saved (`data/cache/torch-compile/`), as a fresh machine would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.project import REPO, base_model, emit, environment, project  # noqa: E402

STAGES = ("validate", "priors", "train")


def run_stages(env: dict) -> dict[str, float]:
    seconds = {}
    for stage in STAGES:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], check=True, env=env)
        seconds[stage] = round(time.perf_counter() - started, 1)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--class-images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--paths", default="eager,fast")
    args = parser.parse_args()

    import torch

    base, resolution = base_model(args.model)
    gpu = torch.cuda.is_available()
    bundle = Path(tempfile.mkdtemp(prefix="boothline-compile-cache-"))
    runs = [("eager", None)] if "eager" in args.paths.split(",") else []
    runs += [("fast", "cold"), ("fast", "warm")] if "fast" in args.paths.split(",") else []
    for path, cache in runs:
        fast = path == "fast"
        overrides = {
            "model": {"base": base, "compile": fast},
            "priors": {"num_images": args.class_images, "steps": 25, "batch_size": 8},
            "train": {"resolution": resolution, "max_train_steps": args.steps, "batch_size": 1,
                      "learning_rate": 5e-6 if args.model != "tiny" else 1e-3, "train_text_encoder": False,
                      "mixed_precision": "bf16" if gpu else "no", "compute_copies": fast and gpu, "compile": fast,
                      "checkpoint_every": 10**9, "validate_every": 0},
        }
        with project(overrides):
            env = {**os.environ, "PYTHONPATH": str(REPO),
                   "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="inductor-")}  # nothing compiled before
            if cache == "warm":
                shutil.copytree(bundle, "data/cache/torch-compile")
            seconds = run_stages(env)
            if cache == "cold" and Path("data/cache/torch-compile").is_dir():
                shutil.copytree("data/cache/torch-compile", bundle, dirs_exist_ok=True)
            summary = json.loads(Path("data/train/summary.json").read_text())
            emit({"benchmark": "time_to_model", "model": args.model, "path": path, "compile_cache": cache,
                  "resolution": resolution, "class_images": args.class_images, "steps": args.steps,
                  "total_s": round(sum(seconds.values()), 1), **{f"{k}_s": v for k, v in seconds.items()},
                  "train_loop_s": summary["train_loop_s"], "steps_per_s": summary["steps_per_s"],
                  **environment()})
    shutil.rmtree(bundle, ignore_errors=True)


if __name__ == "__main__":
    main()
