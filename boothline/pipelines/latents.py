"""Between images and a pipeline's latent space: photos as VAE inputs, their deterministic latents, and the
denoised latents a pipeline generates for a request (before decoding)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from boothline.pipelines.sampling import Request, batches, render_batch


def image_tensor(image: Image.Image, resolution: int, crop: tuple[float, float] | None = None,
                 flip: bool = False) -> torch.Tensor:
    """Resize the short side to `resolution`, crop a square (centred, or at fractions `crop` of the free
    room: training's random crops), optionally mirror; CHW float32 in [-1, 1]."""
    w, h = image.size
    scale = resolution / min(w, h)
    image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BICUBIC)
    room_x, room_y = image.width - resolution, image.height - resolution
    if crop is None:
        left, top = room_x // 2, room_y // 2
    else:
        left, top = int(crop[0] * (room_x + 1)), int(crop[1] * (room_y + 1))
    image = image.crop((left, top, left + resolution, top + resolution))
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


@torch.inference_mode()
def encode_images(pipe, images: Sequence[Image.Image], resolution: int) -> torch.Tensor:
    """Deterministic VAE latents (the posterior mean), scaled as the UNet sees them."""
    vae = pipe.vae
    pixels = torch.stack([image_tensor(im, resolution) for im in images]).to(vae.device, vae.dtype)
    latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    return latents.float().cpu()


@torch.inference_mode()
def generate_latents(pipe, requests: Sequence[Request], batch_size: int = 8) -> torch.Tensor:
    """The denoised latents (before VAE decoding) for each request."""
    out = []
    for batch in batches(requests, batch_size):
        out.extend(render_batch(pipe, batch, output_type="latent"))
    return torch.stack(out).float().cpu()
