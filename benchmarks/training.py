"""Training throughput of the real train stage: one JSON line per configuration.

    python benchmarks/training.py [--model tiny|sd15] [--steps N] [--configs unet,unet+te,lora]

Each configuration runs validate, priors (one class image per instance image: priors only feed the
batches here) and `stages.train.run` for `--steps` steps with no checkpoints or validation grids;
steady steps/s is the median of the stage's own sliding-window rate after the first 20 steps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.project import base_model, emit, environment, project  # noqa: E402

CONFIGS = {
    "unet": {"train_text_encoder": False},
    "unet+te": {"train_text_encoder": True},
    "lora": {"train_text_encoder": False, "lora": {"enabled": True, "rank": 4, "alpha": 4}},
}
WARMUP_STEPS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--batch-size", type=int, default=1, help="instance images per step (+ as many class images)")
    parser.add_argument("--mixed-precision", default=None, help="no | fp16 | bf16 (default: bf16 on GPU, no on CPU)")
    args = parser.parse_args()

    import torch

    from stages import priors, train, validate

    base, resolution = base_model(args.model)
    precision = args.mixed_precision or ("bf16" if torch.cuda.is_available() else "no")
    for name in args.configs.split(","):
        overrides = {
            "model": {"base": base},
            "priors": {"num_images": 5, "steps": 2},
            "train": {"resolution": resolution, "max_train_steps": args.steps, "batch_size": args.batch_size,
                      "checkpoint_every": 10**9, "validate_every": 0, "mixed_precision": precision,
                      **CONFIGS[name]},
        }
        with project(overrides) as params:
            validate.run(params)
            priors.run(params)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            summary = train.run(params)
            rates = [float(line.split(",")[-1]) for line in
                     Path("data/train/metrics.csv").read_text().splitlines()[1 + WARMUP_STEPS:]]
            emit({"benchmark": "training", "model": args.model, "config": name, "resolution": resolution,
                  "batch": f"{args.batch_size}+{args.batch_size}", "mixed_precision": precision,
                  "steps": args.steps, "steady_steps_per_s": round(statistics.median(rates), 3) if rates else None,
                  "mean_steps_per_s": summary["steps_per_s"], "trainable_params": summary["trainable_params"],
                  "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available()
                  else None, **environment()})


if __name__ == "__main__":
    main()
