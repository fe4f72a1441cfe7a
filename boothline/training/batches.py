"""DreamBooth training batches: images to VAE latents (cached once), prompts to text inputs, one batch per step.

Every batch is a function of (seed, micro-step, process rank) only: the image order comes from a seeded shuffle per
epoch, and crops, flips, noise and timesteps from that step's own generator. No DataLoader, no global RNG: a run
resumed at step N draws exactly what an uninterrupted run draws at step N. Under DDP, process r of w takes stream
positions (step * w + r) * batch_size + j.

Latents are the VAE posterior mean (as in evaluation, `boothline.pipelines.latents.encode_images`): a trained
SD VAE's posterior is so narrow that sampling it only adds noise, and an untrained VAE's is so wide that
sampling it buries the image. They are cached once per image, and per mirror image when `random_flip` is
on, so a step costs no VAE pass; random crops change every step, so they are encoded per step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image

from boothline.pipelines.latents import image_tensor
from boothline.training.objective import draw_noise, draw_timesteps, step_generator

log = logging.getLogger(__name__)
ENCODE_BATCH = 8


class EpochOrder:
    """Position k of an endless stream of image indices: each epoch is a fresh seeded shuffle."""

    def __init__(self, count: int, seed: int, stream: str):
        self.count, self.seed, self.stream = count, seed, stream
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def __getitem__(self, position: int) -> int:
        epoch = position // self.count
        if epoch != self._epoch:
            generator = step_generator(self.seed, epoch, stream=self.stream)
            self._epoch, self._order = epoch, torch.randperm(self.count, generator=generator)
        return int(self._order[position % self.count])


@dataclass(frozen=True)
class Augment:
    resolution: int
    center_crop: bool = True
    random_flip: bool = False


class LatentSource:
    """Scaled VAE latents (posterior means) of a set of images, with flips and crops drawn per step."""

    def __init__(self, vae, images: Sequence[Image.Image], augment: Augment, cache: bool = True):
        self.vae, self.images, self.augment = vae, list(images), augment
        self.cached = cache and augment.center_crop
        if cache and not self.cached:
            log.info("random crops change every step: latents are encoded per step instead of cached")
        if self.cached:
            flips = (False, True) if augment.random_flip else (False,)
            self.cache = {flip: self.encode([(im, None, flip) for im in self.images]) for flip in flips}

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def encode(self, views: list[tuple[Image.Image, tuple[float, float] | None, bool]]) -> torch.Tensor:
        """Latents of (image, crop, flip) views, CPU float32, scaled as the UNet sees them."""
        out = []
        for start in range(0, len(views), ENCODE_BATCH):
            chunk = views[start:start + ENCODE_BATCH]
            pixels = torch.stack([image_tensor(im, self.augment.resolution, crop, flip) for im, crop, flip in chunk])
            mean = self.vae.encode(pixels.to(self.vae.device, self.vae.dtype)).latent_dist.mean
            out.append(mean.float().cpu() * self.vae.config.scaling_factor)
        return torch.cat(out)

    def draw(self, indices: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """Latents for `indices`; flips and crops (when on) come from `generator`."""
        n = len(indices)
        flips = (torch.rand(n, generator=generator) < 0.5).tolist() if self.augment.random_flip else [False] * n
        if self.cached:
            return torch.stack([self.cache[flip][i] for i, flip in zip(indices, flips)])
        crops = torch.rand(n, 2, generator=generator).tolist() if not self.augment.center_crop else [None] * n
        return self.encode([(self.images[i], tuple(c) if c else None, f) for i, c, f in zip(indices, crops, flips)])


@dataclass(frozen=True)
class Batch:
    latents: torch.Tensor  # instance rows first, then class rows
    prompt_index: torch.Tensor  # 0: instance prompt, 1: class prompt, per row
    noise: torch.Tensor
    timesteps: torch.Tensor
    num_instance: int

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: to_device(t, device)  # noqa: E731
        return Batch(move(self.latents), move(self.prompt_index), move(self.noise), move(self.timesteps),
                     self.num_instance)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`. To CUDA through pinned memory without waiting: a copy from pageable memory
    first waits for all queued GPU work, which would stall the training loop every step."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class DreamBoothBatches:
    """The batch of each micro-step for one process: `batch_size` instance rows (+ as many class rows)."""

    def __init__(self, instance: LatentSource, prior: LatentSource | None, *, batch_size: int, seed: int,
                 offset_noise: float, num_train_timesteps: int, rank: int = 0, world_size: int = 1):
        self.halves = [(instance, EpochOrder(len(instance), seed, "instance-order"))]
        if prior is not None:
            self.halves.append((prior, EpochOrder(len(prior), seed, "class-order")))
        self.batch_size, self.seed, self.offset_noise = batch_size, seed, offset_noise
        self.num_train_timesteps, self.rank, self.world_size = num_train_timesteps, rank, world_size

    def __call__(self, micro_step: int) -> Batch:
        generator = step_generator(self.seed, micro_step, self.rank)
        first = (micro_step * self.world_size + self.rank) * self.batch_size
        latents, prompt_index = [], []
        for half, (source, order) in enumerate(self.halves):
            latents.append(source.draw([order[first + j] for j in range(self.batch_size)], generator))
            prompt_index += [half] * self.batch_size
        latents = torch.cat(latents)
        noise = draw_noise(tuple(latents.shape), generator, self.offset_noise)
        timesteps = draw_timesteps(len(latents), generator, self.num_train_timesteps)
        return Batch(latents, torch.tensor(prompt_index), noise, timesteps, self.batch_size)


@dataclass(frozen=True)
class TextInputs:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def rows(self, index: torch.Tensor) -> "TextInputs":
        return TextInputs(self.input_ids[index], self.attention_mask[index])

    def to(self, device: torch.device) -> "TextInputs":
        return TextInputs(to_device(self.input_ids, device), to_device(self.attention_mask, device))


def tokenize(tokenizer, prompts: Sequence[str]) -> TextInputs:
    tokens = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    return TextInputs(tokens.input_ids, tokens.attention_mask)


def encode_text(text_encoder, text: TextInputs, use_attention_mask: bool) -> torch.Tensor:
    """Text-encoder hidden states exactly as StableDiffusionPipeline conditions the UNet on them
    (`use_attention_mask`: the text encoder config's flag of that name)."""
    mask = text.attention_mask if use_attention_mask else None
    return text_encoder(text.input_ids, attention_mask=mask, return_dict=False)[0]
