"""Time to a personalised model on the DreamBooth paper's recipe, end to end: one JSON line per run.

    python benchmarks/time_to_model.py [--model tiny|sd15] [--class-images 200] [--steps 1000]
        [--paths eager,fast,fast-train] [--compile-mode default] [--priors-batch 8]

Each run is a fresh project where `python -m stages.validate`, `stages.priors` (the class images) and
`stages.train` (UNet, batch 1 + 1, then the model saved) run as separate processes, exactly as `dvc repro`
runs them; wall time counts everything: process start, model loading, compiling, rendering, training and
saving. The `fast` path compiles (priors and training, `--compile-mode`) and trains on bf16 compute
copies; `fast-train` renders the priors eagerly and trains fast, for when a cold compile of the rendering
modules costs more than it saves on `--class-images`. A path that compiles runs twice: `cold` with empty
compile caches, then `warm` in another fresh project that gets only the portable cache bundle the cold run
saved (`data/cache/torch-compile/`, handed over by `project(..., compile_cache=...)`), as a fresh machine would.
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
from boothline.paths import Workspace  # noqa: E402

STAGES = ("validate", "priors", "train")
PATHS = {"eager": (False, False), "fast": (True, True), "fast-train": (False, True)}  # (compiled priors, fast training)


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
    parser.add_argument("--paths", default="eager,fast", help=", ".join(PATHS))
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--priors-batch", type=int, default=8)
    args = parser.parse_args()
    paths = args.paths.split(",")
    if unknown := set(paths) - set(PATHS):
        raise SystemExit(f"--paths: unknown {sorted(unknown)} (expected some of {', '.join(PATHS)})")

    import torch

    base, resolution = base_model(args.model)
    gpu = torch.cuda.is_available()
    # the stages import the project and what the caller's PYTHONPATH adds (on the device: the carried wheels)
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    bundles = Path(tempfile.mkdtemp(prefix="boothline-compile-cache-"))  # per path: what its cold run compiled
    runs = [(path, cache) for path in paths for cache in (("cold", "warm") if any(PATHS[path]) else (None,))]
    for path, cache in runs:
        compiled_priors, fast = PATHS[path]
        overrides = {
            "model": {"base": base, "compile": compiled_priors, "compile_mode": args.compile_mode},
            "priors": {"num_images": args.class_images, "steps": 25, "batch_size": args.priors_batch},
            "train": {"resolution": resolution, "max_train_steps": args.steps, "batch_size": 1,
                      "learning_rate": 5e-6 if args.model != "tiny" else 1e-3, "train_text_encoder": False,
                      "mixed_precision": "bf16" if gpu else "no", "compute_copies": fast and gpu, "compile": fast,
                      "compile_mode": args.compile_mode, "checkpoint_every": 10**9, "validate_every": 0},
        }
        # cold: no bundle folder yet, so the project starts empty and saves into it; warm: starts from it
        with project(overrides, bundles / path if cache else None):
            env = {**os.environ, "PYTHONPATH": pythonpath,
                   "TORCHINDUCTOR_CACHE_DIR": str(Path("inductor-cache").resolve())}  # nothing compiled before
            seconds = run_stages(env)
            summary = json.loads(Workspace().train_summary.read_text())
            emit({"benchmark": "time_to_model", "model": args.model, "path": path, "compile_cache": cache,
                  "compile_mode": args.compile_mode if cache else None, "priors_batch": args.priors_batch,
                  "resolution": resolution, "class_images": args.class_images, "steps": args.steps,
                  "total_s": round(sum(seconds.values()), 1), **{f"{k}_s": v for k, v in seconds.items()},
                  "train_loop_s": summary["train_loop_s"], "steps_per_s": summary["steps_per_s"],
                  **environment()})
    shutil.rmtree(bundles, ignore_errors=True)


if __name__ == "__main__":
    main()
