"""What a registered version records about where it came from: the params (flattened), the git revision,
the hashes dvc.lock holds for the data and model paths, and the training loss curves (with a plot)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import yaml

from boothline.params import Params, dotted


def flat_params(params: Params) -> dict[str, str]:
    return {key: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            for key, value in dotted(params.model_dump(mode="json")).items()}


def git_tags() -> dict[str, str]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    if revision is None:
        return {"git.revision": "none (not a git repository)"}
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"git.revision": revision, "git.dirty": str(dirty).lower(), "mlflow.source.git.commit": revision}


def dvc_lock_tags(lock_file: Path) -> dict[str, str]:
    """`dvc.<path>` = the hash dvc.lock records for every data and model path of the pipeline."""
    if not lock_file.is_file():
        return {}
    lock = yaml.safe_load(lock_file.read_text()) or {}
    tags = {}
    for stage in (lock.get("stages") or {}).values():
        for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
            path, digest = entry.get("path", ""), entry.get("md5") or entry.get("etag")
            if digest and path.startswith("data/"):
                tags[f"dvc.{path}"] = digest
    return tags


# metrics.csv's windowed rate per step, under a name apart from the summary's overall `train.steps_per_s`.
CURVE_NAMES = {"steps_per_s": "window_steps_per_s"}


def loss_curves(metrics_csv: Path) -> dict[str, list[tuple[int, float]]]:
    if not metrics_csv.is_file():
        return {}
    curves: dict[str, list[tuple[int, float]]] = {}
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    name = f"train.{CURVE_NAMES.get(key, key)}"
                    curves.setdefault(name, []).append((int(row["step"]), float(value)))
    return curves


def plot_loss(curves: dict[str, list[tuple[int, float]]], path: Path) -> Path | None:
    losses = [k for k in ("train.loss", "train.instance_loss", "train.prior_loss") if curves.get(k)]
    if not losses:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in losses:
        steps, values = zip(*curves[key])
        ax.plot(steps, values, label=key.removeprefix("train."), linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def numbers(prefix: str, block: dict) -> dict[str, float]:
    return {f"{prefix}{key}": float(value) for key, value in block.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
