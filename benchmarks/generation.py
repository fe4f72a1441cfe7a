"""Batch-generation throughput of the real generate stage, end to end to PNG files: one JSON line per batch
size and path.

    python benchmarks/generation.py [--model tiny|sd15] [--batch-sizes 1,8] [--images N] [--steps N]
                                    [--paths eager,compiled] [--compile-mode MODE] [--dtype fp16|bf16|fp32]

Paths: `eager` is the stock pipeline (half precision on a GPU, SDPA); `compiled` sets `model.compile`
(channels_last, fused QKV, compiled UNet and VAE decoder). Each runs a warm-up job of one batch first (for
`compiled`, that is the compile: reported as `warmup_s`), then `--images` images (one prompt, one style, seeds
0..N-1). images/s is what the stage reports: pipeline images per second of rendering, PNG encoding and
writing; model loading excluded. Where both paths ran, `max_pixel_diff` / `mean_pixel_diff` compare the
compiled path's images with the eager ones of the same seeds (8-bit pixel values). `image_tflop` is one
image (text encoder, every UNet step with classifier-free guidance, VAE decoder) counted by
`torch.utils.flop_counter`; `mfu` is that times images/s over the chip's peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.project import base_model, carried_compile_cache, emit, environment, peak_tflops, project  # noqa: E402


def pixels(summary: dict):
    import numpy as np
    from PIL import Image

    # in job order (seeds 0..N-1), whatever the image ids
    return [np.asarray(Image.open(file).convert("RGB")).astype(np.int16) for file in summary["files"].values()]


def image_flops(base: str, resolution: int, steps: int, scheduler: str) -> float:
    """FLOPs of rendering one image through the project's own `render_batch`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from boothline.pipelines.loading import load_pipeline, pick_device
    from boothline.pipelines.sampling import Request, render_batch

    device = pick_device()
    pipe = load_pipeline(base, device=device, dtype=torch.float16 if device.type == "cuda" else torch.float32,
                         scheduler=scheduler)
    with FlopCounterMode(display=False) as counter:
        render_batch(pipe, [Request("a photo", 0, steps=steps, width=resolution, height=resolution)])
    del pipe
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--scheduler", default="dpm++")
    parser.add_argument("--paths", default="eager,compiled")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--dtype", default="auto", help="auto (fp16 on GPU, fp32 on CPU) | fp16 | bf16 | fp32")
    args = parser.parse_args()

    import numpy as np
    import torch

    from stages import generate

    base, resolution = base_model(args.model)
    flops, peak = image_flops(base, resolution, args.steps, args.scheduler), peak_tflops()
    compile_cache = carried_compile_cache()
    carried = compile_cache is not None and (compile_cache / "inference.bin").is_file()  # from an earlier call
    for batch_size in map(int, args.batch_sizes.split(",")):
        eager_pixels = None
        for path in args.paths.split(","):
            if path not in ("eager", "compiled"):
                raise SystemExit(f"--paths: unknown path {path!r} (eager, compiled)")
            model = {"base": base, "dtype": args.dtype, "compile": path == "compiled",
                     "compile_mode": args.compile_mode}
            settings = {"prompts": ["{subject} on the beach"], "styles": ["photographic"], "batch_size": batch_size,
                        "steps": args.steps, "scheduler": args.scheduler, "model": base, "width": resolution,
                        "height": resolution}
            torch._dynamo.reset()
            started = time.perf_counter()
            # One batch of other seeds: kernels, allocator, cuDNN autotuning and (compiled) the compile itself.
            warmup_job = {"model": model, "generate": {**settings, "seeds": list(range(10**6, 10**6 + batch_size))}}
            with project(warmup_job, compile_cache) as params:
                generate.run(params)
            warmup = time.perf_counter() - started
            with project({"model": model, "generate": {**settings, "seeds": args.images}}, compile_cache) as params:
                summary = generate.run(params)
                images = pixels(summary)
            record = {"benchmark": "generation", "model": args.model, "path": path, "resolution": resolution,
                      "batch": batch_size, "steps": args.steps, "scheduler": args.scheduler, "dtype": args.dtype,
                      "compile_mode": args.compile_mode if path == "compiled" else None,
                      "compile_cache": ("carried" if carried else "none") if path == "compiled" else None,
                      "images": summary["rendered"], "images_per_s": summary["images_per_second"],
                      "render_seconds": summary["render_seconds"], "warmup_s": round(warmup, 1),
                      "image_tflop": round(flops / 1e12, 4),
                      "mfu": round(flops * summary["images_per_second"] / (peak * 1e12), 4) if peak else None}
            if path == "eager":
                eager_pixels = images
            elif eager_pixels is not None:
                diffs = [np.abs(a - b) for a, b in zip(images, eager_pixels)]
                record["max_pixel_diff"] = int(max(d.max() for d in diffs))
                record["mean_pixel_diff"] = round(float(np.mean([d.mean() for d in diffs])), 4)
            emit({**record, **environment()})


if __name__ == "__main__":
    main()
