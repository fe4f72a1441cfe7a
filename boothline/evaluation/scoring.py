"""Scoring a model as the DreamBooth paper does: every model renders the same prompts with the same seeds, so
scores compare pair by pair. DINO, PRES and DIV need a DINO encoder and CLIP-I and CLIP-T a CLIP one; without
them those metrics are null with a reason. Latent fidelity (`boothline.evaluation.fidelity`) needs neither.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from boothline.evaluation.fidelity import latent_fidelity, mean_similarity
from boothline.evaluation.metrics import (HIGHER_IS_BETTER, METRIC_KEYS, ClipEncoder, DinoEncoder, EncoderUnavailable,
                                          diversity, load_clip, load_dino, mean_matched_similarity,
                                          mean_pairwise_similarity, within_group_diversity)
from boothline.evaluation.protocol import EvalPrompt
from boothline.params import Params
from boothline.paths import Workspace
from boothline.pipelines.latents import encode_images, generate_latents
from boothline.pipelines.loading import base_model_id, load_pipeline, pick_dtype, prepare_for_inference, stage_device
from boothline.pipelines.sampling import Request, render
from boothline.training.checkpoints import load_checkpoint_pipeline

SIGNIFICANT = 6  # digits kept in metrics.json and per_prompt.csv (small scores like 1e-4 keep their precision)
log = logging.getLogger(__name__)


@dataclass
class Encoders:
    dino: DinoEncoder | None
    clip: ClipEncoder | None
    reasons: dict[str, str]  # "dino" / "clip" -> why that encoder is not available


@dataclass
class RealImages:
    images: list[Image.Image]
    dino: torch.Tensor | None
    clip: torch.Tensor | None


@dataclass
class Scored:
    label: str  # "model", "baseline" or "step-<N>"
    step: int | None
    metrics: dict  # METRIC_KEYS (+ <key>_reason) and the latent-fidelity parts
    rows: list[dict]  # per prompt
    images: list[Image.Image]  # prompt-major: all seeds of prompt 0, then prompt 1...


def score_models(params: Params, workspace: Workspace, card: dict, checkpoints: dict[int, Path],
                 prompts: list[EvalPrompt], images: list[Image.Image]) -> tuple[list[Scored], dict]:
    """Score the trained model, then each checkpoint, then (with `eval.baseline`) the base model, one pipeline
    in memory at a time; returns them in that order and the baseline's metric block."""
    device = stage_device(params.model)
    dtype = pick_dtype(params.model.dtype, device)
    encoders = load_encoders(params, device)
    real = RealImages(images,
                      encoders.dino.embed_images(images) if encoders.dino else None,
                      encoders.clip.embed_images(images) if encoders.clip else None)
    log.info("%d prompts x %d seeds; models: trained (step %s), %s%s", len(prompts), params.eval.images_per_prompt,
             card["step"], "".join(f"step {s}, " for s in checkpoints), "base" if params.eval.baseline else "no base")

    def score(load, label: str, step: int | None) -> Scored:
        pipe = prepare_for_inference(load(), params.model, device)
        try:
            return score_pipeline(pipe, label, step, params, prompts, real, encoders)
        finally:
            del pipe
            free_memory()

    scored = [score(lambda: load_pipeline(str(workspace.model_dir), device=device, dtype=dtype,
                                          scheduler=params.model.scheduler), "model", card["step"])]
    for step, path in checkpoints.items():
        scored.append(score(lambda: load_checkpoint_pipeline(path, params, device, dtype), f"step-{step}", step))
    if not params.eval.baseline:
        return scored, metric_block({}, {key: "eval.baseline is false" for key in METRIC_KEYS})
    base = score(lambda: load_pipeline(params.model.base, model=params.model, device=device, dtype=dtype,
                                       scheduler=params.model.scheduler), "baseline", None)
    return scored + [base], {**base.metrics, "model": base_model_id(params.model)}


def load_encoders(params: Params, device: torch.device) -> Encoders:
    encoders = Encoders(None, None, {})
    try:
        encoders.dino = load_dino(params.eval.dino_model, device)
    except EncoderUnavailable as err:
        encoders.reasons["dino"] = str(err)
    try:
        encoders.clip = load_clip(params.eval.clip_model, device)
    except EncoderUnavailable as err:
        encoders.reasons["clip"] = str(err)
    for reason in encoders.reasons.values():
        log.info("%s: its metrics are reported as null", reason)
    return encoders


def requests_for(params: Params, prompts: Sequence[str], seeds: Sequence[int]) -> list[Request]:
    e, size = params.eval, params.train.resolution
    return [Request(prompt, seed, "", e.steps, e.guidance, size, size) for prompt in prompts for seed in seeds]


def score_pipeline(pipe, label: str, step: int | None, params: Params, prompts: list[EvalPrompt],
                   real: RealImages, encoders: Encoders) -> Scored:
    e, size = params.eval, params.train.resolution
    per_prompt = e.images_per_prompt
    seeds = [e.seed + k for k in range(per_prompt)]
    fidelity_seeds = [e.seed + k for k in range(e.fidelity_seeds)]
    requests = requests_for(params, [p.prompt for p in prompts], seeds)
    images = [image for _, image in render(pipe, requests, e.batch_size)]
    groups = [images[i * per_prompt:(i + 1) * per_prompt] for i in range(len(prompts))]

    reference = encode_images(pipe, real.images, size)
    instance = generate_latents(pipe, requests_for(params, [params.instance_prompt], fidelity_seeds), e.batch_size)
    klass = generate_latents(pipe, requests_for(params, [params.class_prompt], fidelity_seeds), e.batch_size)
    fidelity = latent_fidelity(instance, klass, reference)
    values: dict[str, float | None] = {"latent_fidelity": fidelity["latent_fidelity"]}
    reasons: dict[str, str] = {}
    rows = [{"model": label, "step": step, "category": p.category, "prompt": p.prompt, "text_prompt": p.text_prompt,
             "images": per_prompt, "latent_similarity": mean_similarity(encode_images(pipe, group, size), reference)}
            for p, group in zip(prompts, groups)]

    if encoders.dino is not None:
        class_images = [im for _, im in render(pipe, requests_for(params, [params.class_prompt], fidelity_seeds),
                                               e.batch_size)]
        values.update(dino_scores(encoders.dino, images, class_images, real.dino, per_prompt, rows))
        if values["div"] is None:
            reasons["div"] = "needs eval.images_per_prompt >= 2 (diversity is measured among same-prompt images)"
    else:
        reasons.update(dict.fromkeys(("dino", "pres", "div"), encoders.reasons["dino"]))
    if encoders.clip is not None:
        values.update(clip_scores(encoders.clip, images, prompts, real.clip, per_prompt, rows))
    else:
        reasons.update(dict.fromkeys(("clip_i", "clip_t"), encoders.reasons["clip"]))

    metrics = metric_block(values, reasons)
    metrics["latent_instance_similarity"] = rounded(fidelity["instance_similarity"])
    metrics["latent_class_similarity"] = rounded(fidelity["class_similarity"])
    return Scored(label, step, metrics, rows, images)


def dino_scores(dino: DinoEncoder, images: list[Image.Image], class_images: list[Image.Image],
                real: torch.Tensor, per_prompt: int, rows: list[dict]) -> dict[str, float | None]:
    """DINO, PRES and DIV overall; DINO and DIV into each prompt's row."""
    by_prompt = dino.embed_images(images).split(per_prompt)
    for row, embeddings in zip(rows, by_prompt):
        row["dino"] = mean_pairwise_similarity(embeddings, real)
        row["div"] = within_group_diversity(embeddings)
    return {"dino": mean_pairwise_similarity(torch.cat(by_prompt), real),
            "pres": mean_pairwise_similarity(dino.embed_images(class_images), real),
            "div": diversity(by_prompt)}


def clip_scores(clip: ClipEncoder, images: list[Image.Image], prompts: list[EvalPrompt], real: torch.Tensor,
                per_prompt: int, rows: list[dict]) -> dict[str, float]:
    """CLIP-I and CLIP-T overall and into each prompt's row."""
    generated = clip.embed_images(images)
    texts = clip.embed_texts([p.text_prompt for p in prompts]).repeat_interleave(per_prompt, dim=0)
    for row, image_emb, text_emb in zip(rows, generated.split(per_prompt), texts.split(per_prompt)):
        row["clip_i"] = mean_pairwise_similarity(image_emb, real)
        row["clip_t"] = mean_matched_similarity(image_emb, text_emb)
    return {"clip_i": mean_pairwise_similarity(generated, real), "clip_t": mean_matched_similarity(generated, texts)}


def rounded(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


def metric_block(values: dict[str, float | None], reasons: dict[str, str]) -> dict:
    """Every metric key, rounded, and `<key>_reason` for each one that is null."""
    block: dict = {}
    for key in METRIC_KEYS:
        value = values.get(key)
        block[key] = None if value is None else rounded(value)
        if value is None:
            block[f"{key}_reason"] = reasons.get(key, "not computed")
    return block


def best_step(steps: dict[int, dict], metric: str) -> int | None:
    """The step with the best `metric` (ties go to the later step); None when no step has a value."""
    scored = [(block[metric], step) for step, block in steps.items() if block.get(metric) is not None]
    if not scored:
        return None
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    return max(scored, key=lambda vs: (sign * vs[0], vs[1]))[1]


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
