"""Rendering images from a pipeline in batches, each image reproducible from its own seed.

Every image gets its own `torch.Generator`, so image k depends on its seed and settings, not on which
batch it landed in: bit-exact at the same batch size, and within float rounding across batch sizes.
Priors, evaluation and generation all render through `render`, so there is one fast path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from PIL import Image


@dataclass(frozen=True)
class Request:
    prompt: str
    seed: int
    negative_prompt: str = ""
    steps: int = 25
    guidance: float = 7.5
    width: int = 512
    height: int = 512


def generator_for(seed: int, device: torch.device) -> torch.Generator:
    # MPS generators are not supported for all ops; CPU noise is portable and reproducible everywhere.
    gen_device = "cuda" if device.type == "cuda" else "cpu"
    return torch.Generator(gen_device).manual_seed(seed)


def batches(requests: Sequence[Request], batch_size: int) -> Iterator[list[Request]]:
    """Consecutive batches of requests that can share one pipeline call (same steps, guidance, size)."""
    batch: list[Request] = []
    for req in requests:
        if batch and (len(batch) == batch_size or _settings(batch[0]) != _settings(req)):
            yield batch
            batch = []
        batch.append(req)
    if batch:
        yield batch


def _settings(req: Request) -> tuple:
    return (req.steps, req.guidance, req.width, req.height)


@torch.inference_mode()
def render_batch(pipe, batch: Sequence[Request], output_type: str = "pil") -> list:
    """One pipeline call for a batch of requests that share steps, guidance and size. PIL images are made
    from 8-bit pixels quantised on the device (as diffusers would on the CPU), a quarter of the transfer."""
    first = batch[0]
    device = pipe._execution_device
    result = pipe(
        prompt=[r.prompt for r in batch],
        negative_prompt=[r.negative_prompt for r in batch],
        num_inference_steps=first.steps,
        guidance_scale=first.guidance,
        width=first.width,
        height=first.height,
        generator=[generator_for(r.seed, device) for r in batch],
        output_type="pt" if output_type == "pil" else output_type,
    )
    return to_pil(result.images) if output_type == "pil" else list(result.images)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) images in [0, 1] to PIL, rounding exactly as diffusers' `numpy_to_pil` does."""
    pixels = (images.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


def render(pipe, requests: Sequence[Request], batch_size: int = 1) -> Iterator[tuple[Request, Image.Image]]:
    """Yield (request, image) in request order, rendering `batch_size` at a time."""
    for batch in batches(requests, batch_size):
        yield from zip(batch, render_batch(pipe, batch))
