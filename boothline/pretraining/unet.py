"""The world UNet: a diffusers `UNet2DConditionModel` trained as Stable Diffusion's is, on 16 x 16 x 4 VAE
latents of the captioned scenes, conditioned on the frozen world CLIP text tower's last hidden states.

v-prediction on SD's scaled-linear schedule (the built-in scheduler's config), Min-SNR-5 loss weights,
`caption_dropout` of the captions left empty (what classifier-free guidance contrasts with), an EMA of the
weights (what ships). Latents are encoded once, before training (the VAE is frozen).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from boothline.pretraining.arrays import load_dataset, pixels
from boothline.pretraining.loop import Trainer, save_atomically
from boothline.pretraining.settings import Unet

SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
             "steps_offset": 1, "skip_prk_steps": True, "set_alpha_to_one": False, "prediction_type": "v_prediction"}
PNDM_ONLY = ("skip_prk_steps", "set_alpha_to_one")
MIN_SNR_GAMMA = 5.0


def build_unet(settings: Unet, cross_attention_dim: int, latent_channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(settings.seed)
    levels = len(settings.channels)
    return UNet2DConditionModel(
        sample_size=16, in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        block_out_channels=settings.channels, layers_per_block=1, cross_attention_dim=cross_attention_dim,
        attention_head_dim=settings.heads, norm_num_groups=32,
    )


def text_encoder_from_clip(clip_dir: Path):
    """The CLIP text tower as a `CLIPTextModel` (what StableDiffusionPipeline takes), and its tokenizer."""
    from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

    clip = CLIPModel.from_pretrained(clip_dir)
    text = CLIPTextModel(clip.config.text_config)
    text.load_state_dict(clip.text_model.state_dict())
    return text.eval().requires_grad_(False), CLIPTokenizer.from_pretrained(clip_dir)


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, path: Path, batch: int = 250) -> np.ndarray:
    """VAE latent means (scaled) of every image, cached in `path` (a float16 .npy)."""
    if path.is_file():
        cached = np.load(path, mmap_mode="r")
        if len(cached) == len(images):
            return cached
    out = np.empty((len(images), vae.config.latent_channels, 16, 16), np.float16)
    for start in range(0, len(images), batch):
        latents = vae.encode(pixels(images[start:start + batch])).latent_dist.mean * vae.config.scaling_factor
        out[start:start + batch] = latents.numpy()
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def train_unet(settings: Unet, scenes_dir: Path, clip_dir: Path, vae_dir: Path, work_dir: Path, out_dir: Path) -> Path:
    from diffusers import AutoencoderKL, DDPMScheduler

    images, items = load_dataset(scenes_dir)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    work_dir.mkdir(parents=True, exist_ok=True)
    # Named by the VAE's weights: a retrained VAE never reuses another's latents.
    vae_hash = hashlib.sha256((vae_dir / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()[:16]
    clip_hash = hashlib.sha256((clip_dir / "model.safetensors").read_bytes()).hexdigest()[:16]
    latents = encode_latents(vae, images, work_dir.parent / f"latents-{vae_hash}.npy")
    text_encoder, tokenizer = text_encoder_from_clip(clip_dir)
    noise_schedule = DDPMScheduler(**{k: v for k, v in SCHEDULER.items() if k not in PNDM_ONLY})
    snr = noise_schedule.alphas_cumprod / (1 - noise_schedule.alphas_cumprod)
    unet = build_unet(settings, text_encoder.config.hidden_size, vae.config.latent_channels)
    captions = items["caption"].tolist()

    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        batch = torch.randint(len(captions), (settings.batch_size,), generator=generator).sort().values.numpy()
        keep = torch.rand(settings.batch_size, generator=generator) >= settings.caption_dropout
        texts = [captions[i] if k else "" for i, k in zip(batch, keep)]
        tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        with torch.no_grad():
            context = text_encoder(tokens.input_ids)[0]
        x0 = torch.from_numpy(np.array(latents[batch])).float()
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (settings.batch_size,), generator=generator)
        target = noise_schedule.get_velocity(x0, noise, t)
        prediction = unet(noise_schedule.add_noise(x0, noise, t), t, context).sample
        weight = torch.minimum(snr[t], torch.full_like(snr[t], MIN_SNR_GAMMA)) / (snr[t] + 1)  # v-prediction Min-SNR
        return (weight * F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))).mean()

    trainer = Trainer(unet, work_dir, steps=settings.steps, lr=settings.learning_rate, seed=settings.seed,
                      warmup=settings.warmup_steps, ema_decay=0.999, checkpoint_every=settings.checkpoint_every,
                      fingerprint=f"{settings.model_dump_json()} vae={vae_hash} clip={clip_hash}")
    trained = trainer.run(loss)
    return save_atomically(lambda tmp: trained.save_pretrained(tmp, safe_serialization=True), out_dir)
