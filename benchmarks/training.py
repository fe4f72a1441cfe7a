"""Training throughput of the real train stage: one JSON line per configuration and path.

    python benchmarks/training.py [--model tiny|sd15] [--steps N] [--configs unet,unet+te,lora] [--paths eager,fast,deterministic]

Each configuration runs validate, priors (one class image per instance image: priors only feed the
batches here) and `stages.train.run` for `--steps` steps with no checkpoints or validation grids. Paths:
`eager` is plain autocast mixed precision (what the diffusers example does); `fast` adds bf16 compute copies
and torch.compile (`--compile-mode`); `deterministic` is eager with `model.deterministic` (what repeatable
runs cost, and a check that every op of the step has a deterministic kernel). Steady steps/s is the median of the stage's own windowed rate after
the first `--warmup` steps (the compile happens there). Model FLOP utilisation is the FLOPs of one training
step, counted by `torch.utils.flop_counter` on the project's own loss, times steps/s over the chip's peak.
`--profile` records `--profile-steps` steps after the warm-up with `torch.profiler` and adds kernels per
step, device-busy milliseconds per step and the ops that take the most device time.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.project import base_model, carried_compile_cache, emit, environment, peak_tflops, project  # noqa: E402
from boothline.paths import Workspace  # noqa: E402

CONFIGS = {
    "unet": {"train_text_encoder": False},
    "unet+te": {"train_text_encoder": True},
    "lora": {"train_text_encoder": False, "lora": {"enabled": True, "rank": 4, "alpha": 4}},
}


def path_overrides(path: str, precision: str, compile_mode: str) -> dict:
    if path == "eager":
        return {}
    if path == "deterministic":
        return {"model": {"deterministic": True}}
    if path == "fast":
        copies = precision == "bf16"  # compute copies are bf16; fp32 runs (CPU) only compile
        return {"train": {"compute_copies": copies, "compile": True, "compile_mode": compile_mode}}
    raise SystemExit(f"--paths: unknown path {path!r} (eager, fast, deterministic)")


def step_flops(params) -> float:
    """FLOPs of one training step (forward + backward of the text encoder when trained, and the UNet) at the
    configured batch and resolution, counted on the project's own loss with random inputs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from boothline.training.objective import Objective, loss_terms
    from boothline.pipelines.loading import load_pipeline, pick_device
    from boothline.training.trainable import TEXT_ENCODER, UNET, set_trainable
    from boothline.training.batches import encode_text, tokenize

    device = pick_device(params.model.device)
    pipe = load_pipeline(params.model.base, device=device)
    models = set_trainable(pipe, params.train)
    rows, side = 2 * params.train.batch_size, params.train.resolution // 8
    objective = Objective.from_scheduler_config(pipe.scheduler.config, prior_loss_weight=1.0, snr_gamma=None,
                                                device=device)
    latents = torch.randn(rows, pipe.unet.config.in_channels, side, side, device=device)
    timesteps = torch.randint(0, objective.num_train_timesteps, (rows,), device=device)
    with FlopCounterMode(display=False) as counter:
        states = encode_text(pipe.text_encoder, tokenize(pipe.tokenizer, ["a photo"] * rows).to(device), False)
        if TEXT_ENCODER not in models:
            states = states.detach()
        loss_terms(models[UNET], latents, states, torch.randn_like(latents), timesteps, rows // 2,
                   objective).loss.backward()
    del pipe, models
    return float(counter.get_total_flops())


@contextlib.contextmanager
def profiled_steps(skip: int, steps: int, found: dict) -> Iterator[None]:
    """Profile optimizer steps skip+1 .. skip+steps of the train stage run inside; fills `found`."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    from boothline.training import loop

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    original = loop.optimizer_step

    def step_and_mark(run_, step):
        losses = original(run_, step)
        profiler.step()
        return losses

    with profile(activities=activities, schedule=schedule(wait=max(skip - 1, 0), warmup=1, active=steps)) as profiler:
        loop.optimizer_step = step_and_mark
        try:
            yield
        finally:
            loop.optimizer_step = original
    events = profiler.key_averages()
    if cuda:
        kernels = [e for e in profiler.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        top = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:8]
        found.update(kernels_per_step=round(len(kernels) / steps), device_busy_ms_per_step=round(
            sum(k.time_range.elapsed_us() for k in kernels) / 1e3 / steps, 2), top_device_ops=[
            (e.key[:60], round(e.self_device_time_total / 1e3 / steps, 2)) for e in top])
    else:
        ops = sum(e.count for e in events if e.key.startswith("aten::"))
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        found.update(aten_ops_per_step=round(ops / steps), top_cpu_ops=[
            (e.key[:60], round(e.self_cpu_time_total / 1e3 / steps, 2)) for e in top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the steady rate")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--paths", default="eager,fast")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--batch-size", type=int, default=1, help="instance images per step (+ as many class images)")
    parser.add_argument("--mixed-precision", default=None, help="no | fp16 | bf16 (default: bf16 on GPU, no on CPU)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-steps", type=int, default=5)
    args = parser.parse_args()

    import torch

    from boothline.params import deep_merge
    from stages import priors, train, validate

    base, resolution = base_model(args.model)
    precision = args.mixed_precision or ("bf16" if torch.cuda.is_available() else "no")
    peak = peak_tflops()
    compile_cache = carried_compile_cache()
    carried = compile_cache is not None and (compile_cache / "train.bin").is_file()  # from an earlier call
    for name in args.configs.split(","):
        for path in args.paths.split(","):
            overrides = deep_merge({
                "model": {"base": base},
                "priors": {"num_images": 5, "steps": 2},
                "train": {"resolution": resolution, "max_train_steps": args.steps, "batch_size": args.batch_size,
                          "checkpoint_every": 10**9, "validate_every": 0, "mixed_precision": precision,
                          **CONFIGS[name]},
            }, path_overrides(path, precision, args.compile_mode))
            with project(overrides, compile_cache) as params:
                validate.run(params)
                priors.run(params)
                flops = step_flops(params)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                profile: dict = {}
                with profiled_steps(args.warmup, args.profile_steps, profile) if args.profile else contextlib.nullcontext():
                    summary = train.run(params)
                rows = Workspace().train_metrics.read_text().splitlines()[1:]
                rates = [float(line.split(",")[-1]) for line in rows[args.warmup:]]
                steady = statistics.median(rates) if rates else None
                emit({"benchmark": "training", "model": args.model, "config": name, "path": path,
                      "resolution": resolution, "batch": f"{args.batch_size}+{args.batch_size}",
                      "mixed_precision": precision, "compile_mode": args.compile_mode if path == "fast" else None,
                      "compile_cache": ("carried" if carried else "none") if path == "fast" else None,
                      "steps": args.steps, "steady_steps_per_s": round(steady, 3) if steady else None,
                      "wall_s": summary["wall_time_s"], "trainable_params": summary["trainable_params"],
                      "step_tflop": round(flops / 1e12, 4),
                      "mfu": round(flops * steady / (peak * 1e12), 4) if steady and peak else None,
                      "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                      if torch.cuda.is_available() else None, **profile, **environment()})
            torch._dynamo.reset()  # the next configuration compiles its own modules


if __name__ == "__main__":
    main()
