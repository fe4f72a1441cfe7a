"""Measuring the shipped world models (the issue's targets; figures go to data/pretrain/eval/metrics.json).

- CLIP zero-shot, on renders of held-out designs: for each image and factor (class, colour, context,
  style), the candidates are the image's own full caption with that factor set to each of its values; the
  top-1 candidate must be the true one. Colour is scored only where the style keeps colours.
- Identity retrieval, on held-out designs: each view's nearest other view (cosine of CLS embeddings) must
  show the same design.
- VAE: PSNR of reconstructions of the held-out renders.
- Base model: prompts drawn from the grammar, `seeds` images each; the world CLIP must name the prompted
  class, colour, context and style (the same zero-shot test), with a confusion table per factor.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, ValidationError

from boothline.errors import ParamsError
from boothline.pipelines.builtin import BUILTIN_DIRS, WORLD, WORLD_CLIP, WORLD_IDENTITY
from boothline.pretraining.arrays import load_dataset, pixels
from boothline.pretraining.settings import PretrainParams, Section
from boothline.world.captions import Wording, describe, registry_entries, swapped
from boothline.world.designs import Design, Scene, pretraining_design, random_scene
from boothline.world.vocabulary import CLASSES, COLOURLESS_STYLES, COLOURS, CONTEXTS, PLAIN, STYLES

FACTORS = {"noun": list(CLASSES), "colour": list(COLOURS), "context": [PLAIN, *CONTEXTS], "style": [None, *STYLES]}
FULL = Wording(colour=True, photo=True, article=True)


class Evaluate(Section):
    seed: int = 0
    prompts: int = Field(100, ge=1)  # grammar prompts for the base model
    seeds: int = Field(4, ge=1)
    steps: int = Field(25, ge=1)
    guidance: float = Field(7.5, ge=1)
    scheduler: str = "dpm++"


def evaluate_settings(params: PretrainParams) -> Evaluate:
    try:
        return Evaluate(**params.evaluate)
    except ValidationError as err:
        raise ParamsError("pretrain/params.yaml: evaluate: " + "; ".join(e["msg"] for e in err.errors())) from None


def scene_of(row) -> Scene:
    design = Design(row.noun, int(row.variant), row.main, row.part, row.accent, row.pattern, row.emblem)
    none = lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else v  # noqa: E731
    return Scene(design, row.context, none(row.style), none(row.prop), none(row.accessory), float(row.scale),
                 float(row.dx), float(row.dy), bool(row.flip), float(row.rotation), int(row.seed))


def _features(output) -> torch.Tensor:
    # transformers 4 returns the projected embeddings as a tensor, transformers 5 as `pooler_output`.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ZeroShot:
    """The world CLIP naming one factor of an image among that factor's values."""

    def __init__(self, clip_dir: Path, templates: dict[str, str]):
        from transformers import CLIPModel, CLIPTokenizer

        self.model = CLIPModel.from_pretrained(clip_dir, torch_dtype=torch.float32).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
        self.templates = templates
        self._texts: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def image_features(self, images: np.ndarray) -> torch.Tensor:
        out = [_features(self.model.get_image_features(pixel_values=pixels(images[i:i + 256])))
               for i in range(0, len(images), 256)]
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._texts]
        for i in range(0, len(missing), 512):
            tokens = self.tokenizer(missing[i:i + 512], padding=True, truncation=True, return_tensors="pt")
            features = torch.nn.functional.normalize(_features(self.model.get_text_features(**tokens)), dim=-1)
            self._texts.update(zip(missing[i:i + 512], features))
        return torch.stack([self._texts[t] for t in texts])

    def predict(self, features: torch.Tensor, scenes: list[Scene], factor: str) -> list:
        values = FACTORS[factor]
        predictions = []
        for f, scene in zip(features, scenes):
            texts = [describe(swapped(scene, factor, v), FULL, self.templates) for v in values]
            predictions.append(values[int((self.text_features(texts) @ f).argmax())])
        return predictions


def factor_report(truth: list, predicted: list) -> dict:
    confusion: dict[str, Counter] = defaultdict(Counter)
    for t, p in zip(truth, predicted):
        confusion[str(t)][str(p)] += 1
    accuracy = float(np.mean([t == p for t, p in zip(truth, predicted)])) if truth else None
    return {"accuracy": accuracy, "images": len(truth),
            "confusion": {t: dict(c.most_common()) for t, c in sorted(confusion.items())}}


def score_factors(zero_shot: ZeroShot, images: np.ndarray, scenes: list[Scene]) -> dict:
    features = zero_shot.image_features(images)
    report = {}
    for factor in FACTORS:
        keep = [i for i, s in enumerate(scenes) if factor != "colour" or s.style not in COLOURLESS_STYLES]
        truth = [getattr(scenes[i].design, "noun" if factor == "noun" else "main") if factor in ("noun", "colour")
                 else getattr(scenes[i], factor) for i in keep]
        report[factor] = factor_report(truth, zero_shot.predict(features[keep], [scenes[i] for i in keep], factor))
    return report


@torch.no_grad()
def identity_retrieval(identity_dir: Path, views_dir: Path) -> dict:
    from transformers import ViTModel

    model = ViTModel.from_pretrained(identity_dir, torch_dtype=torch.float32).eval()
    images, items = load_dataset(views_dir)
    cls = torch.cat([model(pixel_values=pixels(images[i:i + 256])).last_hidden_state[:, 0]
                     for i in range(0, len(images), 256)])
    z = torch.nn.functional.normalize(cls, dim=-1)
    similarity = z @ z.T
    similarity.fill_diagonal_(-2)
    designs = items["index"].to_numpy()
    nearest = similarity.argmax(1).numpy()
    return {"top1": float(np.mean(designs[nearest] == designs)), "images": len(images),
            "designs": int(len(set(designs)))}


@torch.no_grad()
def vae_psnr(vae_dir: Path, images: np.ndarray) -> float:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch.float32).eval()
    x = pixels(images[:500])
    y = torch.cat([vae.decode(vae.encode(x[i:i + 100]).latent_dist.mean).sample for i in range(0, len(x), 100)])
    mse = ((y.clamp(-1, 1) - x) / 2).pow(2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse)).mean())


def grammar_scenes(settings: Evaluate) -> list[Scene]:
    rng = np.random.default_rng([settings.seed, 99])
    return [random_scene(rng, pretraining_design(rng, held_out=True), p_prop=0, p_accessory=0)
            for _ in range(settings.prompts)]


@torch.no_grad()
def generate_from_grammar(pipeline_dir: Path, settings: Evaluate, templates):
    """`settings.seeds` images of each grammar prompt: (images, their scenes, their prompts)."""
    from boothline.params import Model
    from boothline.pipelines.loading import load_pipeline

    pipe = load_pipeline(str(pipeline_dir), model=Model(base=str(pipeline_dir)), scheduler=settings.scheduler)
    images, scenes, prompts = [], [], []
    for scene in grammar_scenes(settings):
        prompt = describe(scene, FULL, templates)
        generators = [torch.Generator().manual_seed(settings.seed + k) for k in range(settings.seeds)]
        out = pipe([prompt] * settings.seeds, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                   generator=generators, height=64, width=64, output_type="np").images
        images.extend((out * 255).round().astype(np.uint8))
        scenes.extend([scene] * settings.seeds)
        prompts.extend([prompt] * settings.seeds)
    return np.stack(images), scenes, prompts


def evaluate_world(params: PretrainParams, out_dir: Path) -> dict:
    settings = evaluate_settings(params)
    templates = {name: entry["prompt"] for name, entry in registry_entries().items()}
    shipped = params.out_dir
    zero_shot = ZeroShot(shipped / BUILTIN_DIRS[WORLD_CLIP], templates)
    heldout_images, heldout_items = load_dataset(params.dataset("heldout"))
    heldout_scenes = [scene_of(r) for r in heldout_items.itertuples()]
    generated, scenes, prompts = generate_from_grammar(shipped / BUILTIN_DIRS[WORLD], settings, templates)
    metrics = {
        "clip_zero_shot_heldout": score_factors(zero_shot, heldout_images, heldout_scenes),
        "identity_retrieval_heldout": identity_retrieval(shipped / BUILTIN_DIRS[WORLD_IDENTITY],
                                                         params.dataset("identity-heldout")),
        "vae_psnr_heldout": vae_psnr(shipped / BUILTIN_DIRS[WORLD] / "vae", heldout_images),
        "base_model_prompted": score_factors(zero_shot, generated, scenes),
        "base_model_settings": settings.model_dump(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    save_grid(generated, settings.seeds, out_dir / "base-grid.png")
    (out_dir / "base-prompts.txt").write_text("\n".join(dict.fromkeys(prompts)) + "\n")
    return metrics


def save_grid(images: np.ndarray, columns: int, path: Path) -> None:
    from PIL import Image

    rows = len(images) // columns
    grid = images[: rows * columns].reshape(rows, columns, 64, 64, 3).transpose(0, 2, 1, 3, 4)
    Image.fromarray(grid.reshape(rows * 64, columns * 64, 3)).save(path)


def summary(metrics: dict) -> dict:
    """The headline figures: one accuracy per factor and measurement."""
    flat = {f"clip_heldout_{k}": v["accuracy"] for k, v in metrics["clip_zero_shot_heldout"].items()}
    flat.update({f"base_{k}": v["accuracy"] for k, v in metrics["base_model_prompted"].items()})
    flat["identity_top1"] = metrics["identity_retrieval_heldout"]["top1"]
    flat["vae_psnr"] = metrics["vae_psnr_heldout"]
    return flat
