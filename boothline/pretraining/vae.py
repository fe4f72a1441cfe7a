"""The world VAE: a diffusers `AutoencoderKL` (three blocks: 64 px images, 16 x 16 x 4 latents) trained to
reconstruct the rendered scenes (L1 + MSE on pixels and on their gradients, a small KL term).

It is fully convolutional (no mid-block attention), so it trains on random crops and still encodes whole
images. Its `scaling_factor` is set, as Stable Diffusion defines it, to 1 / std of the latents it makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from boothline.pretraining.arrays import load_dataset, pixels
from boothline.pretraining.loop import Trainer, save_atomically
from boothline.pretraining.settings import Vae


def build_vae(settings: Vae):
    from diffusers import AutoencoderKL

    torch.manual_seed(settings.seed)
    blocks = len(settings.channels)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=settings.latent_channels, sample_size=64,
                         down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks,
                         block_out_channels=settings.channels, layers_per_block=1, norm_num_groups=16,
                         mid_block_add_attention=False)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def reconstruction_loss(vae, x: torch.Tensor, kl_weight: float, generator: torch.Generator) -> torch.Tensor:
    posterior = vae.encode(x).latent_dist
    z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
    y = vae.decode(z).sample
    loss = F.l1_loss(y, x) + F.mse_loss(y, x)
    for gy, gx in zip(_gradients(y), _gradients(x)):
        loss = loss + 0.5 * F.l1_loss(gy, gx)
    return loss + kl_weight * posterior.kl().mean()


@torch.no_grad()
def latent_scale(vae, images: np.ndarray, count: int = 2000) -> float:
    sample = images[: min(count, len(images))]
    latents = torch.cat([vae.encode(pixels(sample[i:i + 200])).latent_dist.mean for i in range(0, len(sample), 200)])
    return float(1 / latents.std())


def train_vae(settings: Vae, scenes_dir: Path, work_dir: Path, out_dir: Path) -> Path:
    vae = build_vae(settings)
    images, _ = load_dataset(scenes_dir)
    c = settings.crop

    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        batch = torch.randint(len(images), (settings.batch_size,), generator=generator).sort().values.numpy()
        y0, x0 = (int(v) for v in torch.randint(0, 64 - c + 1, (2,), generator=generator))
        x = pixels(images[batch][:, y0:y0 + c, x0:x0 + c])
        return reconstruction_loss(vae, x, settings.kl_weight, generator)

    trainer = Trainer(vae, work_dir, steps=settings.steps, lr=settings.learning_rate, seed=settings.seed,
                      fingerprint=settings.model_dump_json())
    trained = trainer.run(loss)
    trained.register_to_config(scaling_factor=latent_scale(trained, images))
    return save_atomically(lambda tmp: trained.save_pretrained(tmp, safe_serialization=True), out_dir)
