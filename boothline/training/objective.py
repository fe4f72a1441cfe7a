"""The DreamBooth objective: noise, timesteps and the instance + prior-preservation loss.

A training batch is the instance half (subject images, instance prompt) followed by the class half
(class-prior images, class prompt). The loss is the diffusion MSE on each half,
`loss = instance_loss + prior_loss_weight * prior_loss`, with the target chosen by the noise scheduler's
`prediction_type` (epsilon, v_prediction or sample).

Min-SNR weighting (`snr_gamma`) weighs every sample by its own timestep, so each half is weighted with
that half's timesteps (the diffusers example computes the weights for the whole batch and applies them to
the instance half only, which mixes the two halves up).

`loss_terms` is a pure function of (latents, text embeddings, noise, timesteps): every random draw
happens outside it, from per-step generators (`step_generator`), which is what makes a resumed run
bit-identical to an uninterrupted one and leaves room for compiled or graph-captured fast paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def step_generator(seed: int, step: int, rank: int = 0, stream: str = "batch") -> torch.Generator:
    """A CPU generator for one (seed, stream, step, process): independent of any global RNG state."""
    digest = hashlib.sha256(f"{seed}/{stream}/{step}/{rank}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def draw_noise(shape: tuple[int, ...], generator: torch.Generator, offset_noise: float = 0.0) -> torch.Tensor:
    """Gaussian noise; `offset_noise` adds a per-(sample, channel) constant so the model can learn to
    shift overall brightness (very dark or bright images)."""
    noise = torch.randn(shape, generator=generator)
    if offset_noise > 0:
        noise = noise + offset_noise * torch.randn(shape[:2] + (1,) * (len(shape) - 2), generator=generator)
    return noise


def draw_timesteps(count: int, generator: torch.Generator, num_train_timesteps: int) -> torch.Tensor:
    return torch.randint(0, num_train_timesteps, (count,), generator=generator)


@dataclass(frozen=True)
class Objective:
    """What the loss needs from the noise schedule and the training params."""

    alphas_cumprod: torch.Tensor  # (num_train_timesteps,), float32, on the training device
    prediction_type: str
    prior_loss_weight: float = 1.0
    snr_gamma: float | None = None

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type {self.prediction_type!r}: expected one of {PREDICTION_TYPES}")

    @classmethod
    def from_scheduler_config(cls, config, *, prior_loss_weight: float, snr_gamma: float | None,
                              device: torch.device) -> "Objective":
        """The DDPM training schedule defined by a pipeline's scheduler config (any scheduler class)."""
        from diffusers import DDPMScheduler

        ddpm = DDPMScheduler.from_config(config)
        return cls(ddpm.alphas_cumprod.to(device=device, dtype=torch.float32), ddpm.config.prediction_type,
                   prior_loss_weight, snr_gamma)

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    def noisy_latents_and_target(self, latents: torch.Tensor, noise: torch.Tensor,
                                 timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha_bar = self.alphas_cumprod[timesteps].view(-1, *([1] * (latents.dim() - 1)))
        signal, sigma = alpha_bar**0.5, (1 - alpha_bar) ** 0.5
        noisy = signal * latents + sigma * noise
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "v_prediction":
            target = signal * noise - sigma * latents
        else:
            target = latents
        return noisy, target

    def sample_weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        """Min-SNR-gamma weight of each sample (Hang et al. 2023), or None without `snr_gamma`."""
        if self.snr_gamma is None:
            return None
        alpha_bar = self.alphas_cumprod[timesteps]
        snr = alpha_bar / (1 - alpha_bar)
        clipped = torch.clamp(snr, max=self.snr_gamma)
        if self.prediction_type == "epsilon":
            return clipped / snr
        if self.prediction_type == "v_prediction":
            return clipped / (snr + 1)
        return clipped


@dataclass(frozen=True)
class LossTerms:
    loss: torch.Tensor  # what is backpropagated
    instance_loss: torch.Tensor
    prior_loss: torch.Tensor  # zero without prior preservation


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    per_sample = ((prediction - target) ** 2).flatten(1).mean(dim=1)
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def loss_terms(unet, latents: torch.Tensor, encoder_hidden_states: torch.Tensor, noise: torch.Tensor,
               timesteps: torch.Tensor, num_instance: int, objective: Objective) -> LossTerms:
    """The DreamBooth loss of one batch whose first `num_instance` rows are the instance half."""
    noisy, target = objective.noisy_latents_and_target(latents, noise, timesteps)
    prediction = unet(noisy, timesteps, encoder_hidden_states, return_dict=False)[0].float()
    target = target.float()
    weights = objective.sample_weights(timesteps)
    n = num_instance
    instance_loss = weighted_mse(prediction[:n], target[:n], None if weights is None else weights[:n])
    if n == len(latents):
        prior_loss = torch.zeros((), device=instance_loss.device)
        return LossTerms(instance_loss, instance_loss, prior_loss)
    prior_loss = weighted_mse(prediction[n:], target[n:], None if weights is None else weights[n:])
    return LossTerms(instance_loss + objective.prior_loss_weight * prior_loss, instance_loss, prior_loss)
