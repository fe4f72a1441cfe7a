"""Latent-space fidelity: does the subject token pull generations towards the subject's own latents?

Unlike DINO or CLIP scores this needs no extra encoder, so it is meaningful for any model, the tiny one
included. Definitions (all cosine similarities of flattened, per-channel-centred latents):

- `mean_similarity(A, R)`: mean over every pair (a in A, r in R) of cos(a, r);
- `latent_fidelity = mean_similarity(G_instance, R) - mean_similarity(G_class, R)`, where R are the VAE
  latents of the real subject images, G_instance latents generated for the instance prompt ("a photo of
  sks toy") and G_class for the class prompt ("a photo of a toy"), with the same seeds. Above zero: the
  token carries the subject's identity; an untrained base model scores about zero.

Centring each latent per channel removes the colour cast that every image of a dataset shares, so the
score measures layout and shape rather than overall brightness.
"""

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


def _centred_unit(latents: torch.Tensor) -> torch.Tensor:
    x = latents.flatten(2)
    x = x - x.mean(dim=2, keepdim=True)
    x = x.flatten(1)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def mean_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of (a_i, b_j), latents shaped (N, C, H, W)."""
    return float((_centred_unit(a) @ _centred_unit(b).T).mean())


def latent_fidelity(instance_generated: torch.Tensor, class_generated: torch.Tensor,
                    reference: torch.Tensor) -> dict[str, float]:
    instance = mean_similarity(instance_generated, reference)
    klass = mean_similarity(class_generated, reference)
    return {"latent_fidelity": instance - klass, "instance_similarity": instance, "class_similarity": klass}
