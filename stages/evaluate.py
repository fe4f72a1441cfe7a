"""Stage 4, evaluate: the DreamBooth paper's protocol for the trained model, its checkpoints and the base model.

Every model renders the same prompts (`boothline.evaluation.protocol`) with the same seeds, so scores compare pair
by pair. Outputs under `data/eval/`:

- `metrics.json` (a DVC metric): dino, clip_i, clip_t, pres, div, latent_fidelity for the trained model,
  each null with `<key>_reason` when not computable; `baseline` (the base model, same keys); `steps`
  (the same block per scored training step) and `best_step` by `register.primary_metric`;
- `per_prompt.csv`: one row per model and prompt, with dino, clip_i, clip_t, div for that prompt's images
  and `latent_similarity` (encoder-free: mean cosine similarity of the VAE latents of its images to the
  subject images' latents, centred per channel as in `boothline.evaluation.latents`);
- `grids/<model>.png`: prompts x seeds; `plots/per_category.png`, `plots/per_step.png`.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from PIL import Image

from boothline.training.checkpoints import checkpoint_at, list_checkpoints, load_checkpoint_pipeline
from boothline.entry import StageError, run_stage
from boothline.io.files import atomic_write_text, remove_stale
from boothline.io.images import save_png
from boothline.evaluation.latents import encode_images, generate_latents, latent_fidelity, mean_similarity
from boothline.evaluation.metrics import (HIGHER_IS_BETTER, METRIC_KEYS, ClipEncoder, DinoEncoder, EncoderUnavailable,
                               diversity, load_clip, load_dino, mean_matched_similarity, mean_pairwise_similarity,
                               within_group_diversity)
from boothline.pipelines.loading import (base_model_id, load_pipeline, pick_dtype, prepare_for_inference,
                             read_model_card, stage_device)
from boothline.params import Params
from boothline.paths import CHECKPOINTS, EVAL_DIR, EVAL_METRICS, MODEL_DIR, VALIDATED_MANIFEST
from boothline.photos.folder import read_manifest
from boothline.evaluation.protocol import EvalPrompt, eval_prompts
from boothline.pipelines.sampling import Request, render
from boothline.io.sheets import prompt_grid

PER_PROMPT_FILE = EVAL_DIR / "per_prompt.csv"
PER_PROMPT_METRICS = ("latent_similarity", "dino", "clip_i", "clip_t", "div")
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


# --- inputs, checked before any model is loaded --------------------------------------------------------

def trained_model_card() -> dict:
    card = read_model_card(MODEL_DIR) if MODEL_DIR.is_dir() else None
    if card is None:
        raise StageError(f"{MODEL_DIR}: no trained model (no boothline_model.json); run `python -m stages.train` "
                         "first (or `dvc repro`)")
    return card


def checkpoint_dirs(params: Params, card: dict) -> dict[int, Path]:
    """The checkpoint directory of each `eval.checkpoints` step other than the final one."""
    found = {}
    for step in sorted(set(params.eval.checkpoints)):
        if step == card["step"]:
            continue  # the final model itself
        checkpoint = checkpoint_at(step)
        if checkpoint is None:
            available = [f"step-{c.step}" for c in list_checkpoints()]
            raise StageError(
                f"eval.checkpoints: step {step} has no checkpoint {CHECKPOINTS / f'step-{step}'} (available: "
                f"{', '.join(available) or 'none'}); training keeps only the newest train.keep_checkpoints, every "
                "train.checkpoint_every steps"
            )
        fingerprint = checkpoint.state.get("fingerprint")
        if fingerprint != card.get("fingerprint"):
            raise StageError(f"{checkpoint.path}: belongs to another training run than {MODEL_DIR} (fingerprint "
                             f"{fingerprint} != {card.get('fingerprint')}); delete {CHECKPOINTS} and retrain")
        found[step] = checkpoint.path
    return found


def subject_images() -> list[Image.Image]:
    return [centre_square(image) for image in read_manifest(VALIDATED_MANIFEST, "validate").images]


def centre_square(image: Image.Image) -> Image.Image:
    """The photo as training sees it (`train.center_crop`): the encoders' processors would otherwise squash a
    non-square photo (DINO's ViT processor resizes straight to 224 x 224) while the generated images are square."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


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


# --- scoring one model ---------------------------------------------------------------------------------

def requests_for(params: Params, prompts: Sequence[str], seeds: Sequence[int]) -> list[Request]:
    e, size = params.eval, params.train.resolution
    return [Request(prompt, seed, "", e.steps, e.guidance, size, size) for prompt in prompts for seed in seeds]


def score_pipeline(pipe, label: str, step: int | None, params: Params, prompts: list[EvalPrompt],
                   real: RealImages, encoders: Encoders) -> Scored:
    e, size = params.eval, params.train.resolution
    per_prompt = e.images_per_prompt
    seeds = [e.seed + k for k in range(per_prompt)]
    fidelity_seeds = [e.seed + k for k in range(e.fidelity_seeds)]
    images = [image for _, image in render(pipe, requests_for(params, [p.prompt for p in prompts], seeds), e.batch_size)]
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


# --- outputs -------------------------------------------------------------------------------------------

def plot_per_category(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in PER_PROMPT_METRICS if m in table and table[m].notna().any()]
    means = table.groupby(["category", "model"], sort=False)[metrics].mean()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        means[metric].unstack("model").plot.bar(ax=ax, rot=0)
        ax.set_title(metric)
        ax.set_xlabel("")
        ax.legend(fontsize=7)
    fig.suptitle("evaluation metrics per prompt category")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_step(steps: dict[int, dict], baseline: dict, best: int | None, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(steps)
    keys = [k for k in METRIC_KEYS if any(steps[s][k] is not None for s in order)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot(order, [steps[s][key] for s in order], marker="o", label="trained")
        if baseline.get(key) is not None:
            ax.axhline(baseline[key], linestyle="--", color="grey", label="base model")
        if key == metric and best is not None:
            ax.plot([best], [steps[best][key]], marker="*", markersize=14, color="red", label=f"best: step {best}")
        ax.set_title(key + ("" if HIGHER_IS_BETTER[key] else " (lower is better)"))
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(params: Params, card: dict, prompts: list[EvalPrompt], scored: list[Scored],
                  baseline: dict) -> dict:
    final = scored[0]
    steps = {s.step: s.metrics for s in scored if s.step is not None}
    metric = params.register.primary_metric
    best = best_step(steps, metric)
    report = {
        **final.metrics,
        "baseline": baseline,
        "steps": {str(step): steps[step] for step in sorted(steps)},
        "best_step": best,
        "best_metric": metric,
        "model": {key: card.get(key) for key in ("kind", "step", "fingerprint", "base_id")},
        "prompt_set": "custom" if params.eval.prompts is not None else f"dreambooth-{params.subject.kind}",
        "prompts": len(prompts),
        "images_per_prompt": params.eval.images_per_prompt,
    }
    if best is None:
        report["best_step_reason"] = f"no scored step has a value for {metric}"

    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    remove_stale(EVAL_DIR, keep=lambda path: path.parent.name not in ("grids", "plots"))  # all drawn anew
    table = pd.DataFrame([row for s in scored for row in s.rows])
    table = table.reindex(columns=["model", "step", "category", "prompt", "text_prompt", "images",
                                   *PER_PROMPT_METRICS]).astype({"step": "Int64"})  # the base model has no step
    atomic_write_text(PER_PROMPT_FILE, table.to_csv(index=False, float_format=f"%.{SIGNIFICANT}g"))
    for s in scored:
        seeds = [params.eval.seed + k for k in range(params.eval.images_per_prompt)]
        grid = prompt_grid(s.label, [p.prompt for p in prompts], s.images, len(seeds), seeds)
        save_png(EVAL_DIR / "grids" / f"{s.label}.png", grid,
                 record={"model": s.label, "prompts": [p.prompt for p in prompts], "seeds": seeds})
    plot_per_category(table, EVAL_DIR / "plots" / "per_category.png")
    plot_per_step(steps, baseline, best, metric, EVAL_DIR / "plots" / "per_step.png")
    atomic_write_text(EVAL_METRICS, json.dumps(report, indent=2) + "\n")
    return report


# --- the stage -----------------------------------------------------------------------------------------

def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(params: Params) -> dict:
    started = time.perf_counter()
    card = trained_model_card()
    checkpoints = checkpoint_dirs(params, card)
    prompts = eval_prompts(params)
    images = subject_images()

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
            del pipe  # one pipeline in memory at a time
            free_memory()

    scored = [score(lambda: load_pipeline(str(MODEL_DIR), device=device, dtype=dtype,
                                          scheduler=params.model.scheduler), "model", card["step"])]
    for step, path in checkpoints.items():
        scored.append(score(lambda: load_checkpoint_pipeline(path, params, device, dtype), f"step-{step}", step))
    if params.eval.baseline:
        base = score(lambda: load_pipeline(params.model.base, model=params.model, device=device, dtype=dtype,
                                           scheduler=params.model.scheduler), "baseline", None)
        scored.append(base)
        baseline = {**base.metrics, "model": base_model_id(params.model)}
    else:
        baseline = metric_block({}, {key: "eval.baseline is false" for key in METRIC_KEYS})

    report = write_outputs(params, card, prompts, scored, baseline)
    seconds = round(time.perf_counter() - started, 2)
    log.info("latent_fidelity %s (base %s), best step %s; %s s; results in %s", report["latent_fidelity"],
             baseline.get("latent_fidelity"), report["best_step"], seconds, EVAL_METRICS)
    return {"latent_fidelity": report["latent_fidelity"], "best_step": report["best_step"], "wall_time_s": seconds}


def main() -> None:
    sys.exit(run_stage("evaluate", run))


if __name__ == "__main__":
    main()
