"""Batch-generation throughput of the real generate stage, end to end to PNG files: one JSON line per batch size.

    python benchmarks/generation.py [--model tiny|sd15] [--batch-sizes 1,8] [--images N] [--steps N]

Each batch size renders `--images` images (one prompt, one style, seeds 0..N-1) after a warm-up job of one
batch in the same process; images/s is what the stage reports: pipeline images per rendering second,
model loading excluded, PNG encoding and writing included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.project import base_model, emit, environment, project  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--scheduler", default="dpm++")
    args = parser.parse_args()

    from stages import generate

    base, resolution = base_model(args.model)
    for batch_size in map(int, args.batch_sizes.split(",")):
        settings = {"prompts": ["{subject} on the beach"], "styles": ["photographic"], "batch_size": batch_size,
                    "steps": args.steps, "scheduler": args.scheduler, "model": base, "width": resolution,
                    "height": resolution}
        warmup = {**settings, "seeds": list(range(10**6, 10**6 + batch_size))}  # one batch, other seeds
        with project({"model": {"base": base}, "generate": warmup}) as params:
            generate.run(params)  # kernels, allocator, cudnn autotuning: warm for the measured job
        with project({"model": {"base": base}, "generate": {**settings, "seeds": args.images}}) as params:
            summary = generate.run(params)
            emit({"benchmark": "generation", "model": args.model, "resolution": resolution, "batch": batch_size,
                  "steps": args.steps, "scheduler": args.scheduler, "images": summary["rendered"],
                  "images_per_s": summary["images_per_second"], "render_seconds": summary["render_seconds"],
                  **environment()})


if __name__ == "__main__":
    main()
