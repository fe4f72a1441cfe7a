"""Validation grids during training: `train.validation_prompts` rendered with fixed seeds by the model as it
is at step N, into `data/checkpoints/validation/step-<N>.png` (one row per prompt, one column per seed).
"""

from __future__ import annotations

from pathlib import Path

from boothline.io.images import save_png
from boothline.io.sheets import prompt_grid
from boothline.params import Params
from boothline.pipelines.loading import make_scheduler
from boothline.pipelines.sampling import Request, render


def validation_requests(params: Params) -> list[Request]:
    t, size = params.train, params.train.resolution
    return [Request(params.fill(prompt), seed, steps=t.validation_steps, guidance=t.validation_guidance,
                    width=size, height=size)
            for prompt in t.validation_prompts for seed in range(t.validation_seeds)]


def save_validation_grid(pipe, params: Params, step: int, directory: Path) -> Path:
    """Render the validation prompts with `pipe`'s current weights (switched to eval mode meanwhile)."""
    from diffusers import StableDiffusionPipeline

    components = {**pipe.components, "scheduler": make_scheduler(params.model.scheduler, pipe.scheduler.config)}
    sampler = StableDiffusionPipeline(**components, requires_safety_checker=False)
    sampler.set_progress_bar_config(disable=True)
    requests = validation_requests(params)
    was_training = {name: module.training for name, module in (("unet", pipe.unet), ("te", pipe.text_encoder))}
    pipe.unet.eval()
    pipe.text_encoder.eval()
    try:
        images = [image for _, image in render(sampler, requests, batch_size=len(requests))]
    finally:
        pipe.unet.train(was_training["unet"])
        pipe.text_encoder.train(was_training["te"])
    seeds = list(range(params.train.validation_seeds))
    prompts = [params.fill(prompt) for prompt in params.train.validation_prompts]
    grid = prompt_grid(f"step {step}", prompts, images, len(seeds), seeds)
    record = {"step": step, "prompts": [r.prompt for r in requests], "seeds": [r.seed for r in requests],
              "steps": params.train.validation_steps, "guidance": params.train.validation_guidance}
    return save_png(directory / f"step-{step}.png", grid, record=record)
