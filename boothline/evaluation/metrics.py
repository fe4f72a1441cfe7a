"""The DreamBooth paper's evaluation metrics, and the image/text encoders they need.

All similarities are cosine similarities of embeddings (each embedding scaled to unit length):

- DINO   = mean over all pairs (generated g, real r) of cos(DINO(g), DINO(r)); DINO(x) is the CLS token of
           the last layer of a self-supervised ViT (the paper: ViT-S/16 DINO, `facebook/dino-vits16`).
- CLIP-I = the same pairs, with CLIP image embeddings (the paper: ViT-L/14 CLIP).
- CLIP-T = mean over generated images of cos(CLIP_image(g), CLIP_text(p)), p being the image's prompt
           with the subject token removed ("a dog in the jungle").
- PRES   = DINO for images of the plain class prompt ("a photo of a dog") against the real subject images;
           lower is better: the model still draws other dogs, not only this one (prior preserved).
- DIV    = mean over prompts of the mean over pairs i < j of that prompt's images of
           1 - cos(DINO(x_i), DINO(x_j)); 0 when all seeds give the same picture, higher is more varied.
           The paper uses LPIPS distances; LPIPS needs torchvision-hosted VGG/AlexNet weights, so boothline
           uses the DINO features it already has. Needs at least 2 images per prompt.

An encoder is loaded only from what `eval.dino_model` / `eval.clip_model` name (a built-in name, a local
directory or a hub id) through transformers: `builtin:world-identity` (trained on the procedural world to
keep one design's identity across contexts and styles, in DINO's role) and `builtin:world-clip` are the
defaults; their figures are not comparable with the paper's DINO ViT-S/16 and CLIP ViT-L/14 ones. When one
is not set, cannot be loaded, or lacks trained weights, its metrics are reported as null with the reason: a
number from an untrained encoder is never reported as CLIP or DINO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image

from boothline.pipelines.builtin import BUILTIN_DIRS, builtin_dir

# Which way is better, per metric key of data/eval/metrics.json.
HIGHER_IS_BETTER = {"dino": True, "clip_i": True, "clip_t": True, "pres": False, "div": True,
                    "latent_fidelity": True}
METRIC_KEYS = tuple(HIGHER_IS_BETTER)
# The DINO CLS embedding is the last hidden state's first token; a ViT checkpoint saved without the
# (unused) pooler loads with these missing, which does not make the encoder untrained.
UNUSED_WEIGHTS = ("pooler.",)
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, ImportError)


def unit(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) for embeddings a (N, D) and b (M, D): an (N, M) matrix."""
    return unit(a) @ unit(b).T


def mean_pairwise_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of cos(a_i, b_j) over every pair: DINO, CLIP-I and PRES."""
    return float(cosine_matrix(a, b).mean())


def mean_matched_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of cos(a_i, b_i): CLIP-T, each image with its own prompt."""
    if a.shape != b.shape:
        raise ValueError(f"matched embeddings must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return float((unit(a) * unit(b)).sum(dim=-1).mean())


def within_group_diversity(embeddings: torch.Tensor) -> float | None:
    """Mean of 1 - cos(x_i, x_j) over pairs i < j of one prompt's images; None for fewer than 2."""
    n = len(embeddings)
    if n < 2:
        return None
    upper = torch.triu_indices(n, n, offset=1)
    similarities = cosine_matrix(embeddings, embeddings)[upper[0], upper[1]]
    return float((1 - similarities).mean())


def diversity(groups: Sequence[torch.Tensor]) -> float | None:
    """DIV: the mean over prompts of `within_group_diversity`; None when no prompt has 2 images."""
    scores = [s for s in (within_group_diversity(g) for g in groups) if s is not None]
    return sum(scores) / len(scores) if scores else None


class EncoderUnavailable(Exception):
    """An encoder that is not configured or cannot be used; the message is the reason shown in metrics."""


def _batches(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _features(output) -> torch.Tensor:
    # transformers 4 returns the projected embeddings as a tensor, transformers 5 as `pooler_output`.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@dataclass
class ImageEncoder:
    """A transformers vision model and its processor; `image_features` says which output is the embedding."""

    model: torch.nn.Module
    processor: object
    device: torch.device

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 16) -> torch.Tensor:
        out = []
        for batch in _batches(list(images), batch_size):
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
            out.append(self.image_features(pixels).float().cpu())
        return torch.cat(out)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class DinoEncoder(ImageEncoder):
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]  # the CLS token, as the paper uses


class ClipEncoder(ImageEncoder):
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixels))

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        out = []
        for batch in _batches(list(texts), batch_size):
            tokens = self.processor(text=batch, padding=True, truncation=True, return_tensors="pt").to(self.device)
            out.append(_features(self.model.get_text_features(**tokens)).float().cpu())
        return torch.cat(out)


def _load(key: str, spec: str | None, processor_class: str, device: torch.device):
    import transformers

    if not spec:
        raise EncoderUnavailable(f"eval.{key} is not set (a built-in name, a local directory or a hub id)")
    if spec in BUILTIN_DIRS:
        spec = str(builtin_dir(spec))  # a damaged copy is an error naming the file, not a null metric
    try:
        model, info = transformers.AutoModel.from_pretrained(spec, output_loading_info=True)
        processor = getattr(transformers, processor_class).from_pretrained(spec)
    except LOAD_ERRORS as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise EncoderUnavailable(f"eval.{key} = {spec!r}: cannot be loaded ({type(err).__name__}: {first_line})") from None
    missing = sorted(k for k in info["missing_keys"] if not k.startswith(UNUSED_WEIGHTS))
    if missing:
        raise EncoderUnavailable(
            f"eval.{key} = {spec!r}: {len(missing)} weight tensors are missing from the checkpoint (e.g. "
            f"{missing[0]}); an untrained encoder's scores would be meaningless"
        )
    return model.eval().requires_grad_(False).to(device), processor


def load_dino(spec: str | None, device: torch.device) -> DinoEncoder:
    model, processor = _load("dino_model", spec, "AutoImageProcessor", device)
    if not hasattr(model.config, "image_size"):  # a ViT-like image model has it; text or CLIP models do not
        raise EncoderUnavailable(f"eval.dino_model = {spec!r}: is a {type(model).__name__}, not a ViT image encoder")
    return DinoEncoder(model, processor, device)


def load_clip(spec: str | None, device: torch.device) -> ClipEncoder:
    model, processor = _load("clip_model", spec, "AutoProcessor", device)
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise EncoderUnavailable(f"eval.clip_model = {spec!r}: is a {type(model).__name__}, not a CLIP model")
    return ClipEncoder(model, processor, device)
