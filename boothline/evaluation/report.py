"""The evaluation report: `metrics.json` (a DVC metric), `per_prompt.csv`, a prompts x seeds grid per model and
the plots per prompt category and per training step."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from boothline.evaluation.metrics import HIGHER_IS_BETTER, METRIC_KEYS
from boothline.evaluation.protocol import EvalPrompt
from boothline.evaluation.scoring import SIGNIFICANT, Scored, best_step
from boothline.io.files import atomic_write_text, remove_stale
from boothline.io.images import save_png
from boothline.io.sheets import prompt_grid
from boothline.params import Params
from boothline.paths import Workspace

PER_PROMPT_FILE = "per_prompt.csv"
PER_PROMPT_METRICS = ("latent_similarity", "dino", "clip_i", "clip_t", "div")


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


def write_report(params: Params, workspace: Workspace, card: dict, prompts: list[EvalPrompt], scored: list[Scored],
                 baseline: dict) -> dict:
    """Everything under the workspace's data/eval/, metrics.json last (what DVC and register read)."""
    eval_dir = workspace.eval_dir
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

    eval_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(eval_dir, keep=lambda path: path.parent.name not in ("grids", "plots"))  # all drawn anew
    table = pd.DataFrame([row for s in scored for row in s.rows])
    table = table.reindex(columns=["model", "step", "category", "prompt", "text_prompt", "images",
                                   *PER_PROMPT_METRICS]).astype({"step": "Int64"})  # the base model has no step
    atomic_write_text(eval_dir / PER_PROMPT_FILE, table.to_csv(index=False, float_format=f"%.{SIGNIFICANT}g"))
    for s in scored:
        seeds = [params.eval.seed + k for k in range(params.eval.images_per_prompt)]
        grid = prompt_grid(s.label, [p.prompt for p in prompts], s.images, len(seeds), seeds)
        save_png(eval_dir / "grids" / f"{s.label}.png", grid,
                 record={"model": s.label, "prompts": [p.prompt for p in prompts], "seeds": seeds})
    plot_per_category(table, eval_dir / "plots" / "per_category.png")
    plot_per_step(steps, baseline, best, metric, eval_dir / "plots" / "per_step.png")
    atomic_write_text(workspace.eval_metrics, json.dumps(report, indent=2) + "\n")
    return report
