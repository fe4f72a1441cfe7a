"""Stage 5, register: log the trained model, its training and its evaluation to MLflow, and gate promotion.

Registers `data/model/` (or, with `register.use_best_checkpoint`, the best-scoring checkpoint of
`data/eval/metrics.json`) under `register.model_name` (default `boothline-<subject folder>`) in the store at
`register.tracking_uri`. A model already registered (same training fingerprint and step) is not registered
again: its version is gated anew with the current thresholds. Writes `data/registry.json`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import yaml

from boothline.entry import StageError, run_stage
from boothline.io.files import atomic_write_text
from boothline.evaluation.metrics import METRIC_KEYS
from boothline.pipelines.loading import MODEL_CARD, base_model_id, read_model_card
from boothline.params import Params, dotted
from boothline.paths import CHECKPOINTS, EVAL_DIR, EVAL_METRICS, MODEL_DIR, REGISTRY_FILE, TRAIN_METRICS, TRAIN_SUMMARY

DVC_LOCK = Path("dvc.lock")
log = logging.getLogger(__name__)


def model_name(params: Params) -> str:
    if params.register.model_name:
        return params.register.model_name
    slug = re.sub(r"[^a-z0-9-]+", "-", params.subject.instance_dir.name.lower()).strip("-")
    return f"boothline-{slug or 'subject'}"


# --- what to register, checked before anything is logged -----------------------------------------------

def read_inputs(params: Params) -> tuple[dict, dict]:
    card = read_model_card(MODEL_DIR) if MODEL_DIR.is_dir() else None
    if card is None:
        raise StageError(f"{MODEL_DIR}: no trained model ({MODEL_CARD} missing); run `python -m stages.train` first")
    if not EVAL_METRICS.is_file():
        raise StageError(f"{EVAL_METRICS}: not found; run `python -m stages.evaluate` first (or `dvc repro`)")
    report = json.loads(EVAL_METRICS.read_text())
    scored = report.get("model", {})
    if (scored.get("fingerprint"), scored.get("step")) != (card.get("fingerprint"), card.get("step")):
        raise StageError(f"{EVAL_METRICS}: scores another model (step {scored.get('step')}, fingerprint "
                         f"{scored.get('fingerprint')}) than {MODEL_DIR} (step {card.get('step')}, fingerprint "
                         f"{card.get('fingerprint')}); rerun `python -m stages.evaluate`")
    if not card.get("fingerprint"):
        raise StageError(f"{MODEL_DIR / MODEL_CARD}: has no training fingerprint; retrain with `python -m stages.train`")
    return card, report


def chosen_step(params: Params, card: dict, report: dict) -> int:
    """The final step, or with `register.use_best_checkpoint` the best step the evaluation found."""
    best = report.get("best_step")
    if not params.register.use_best_checkpoint or best is None or best == card["step"]:
        return card["step"]
    if report.get("best_metric") != params.register.primary_metric:
        raise StageError(f"{EVAL_METRICS}: best step chosen by {report.get('best_metric')}, but "
                         f"register.primary_metric is {params.register.primary_metric}; rerun `python -m stages.evaluate`")
    if str(best) not in report.get("steps", {}):
        raise StageError(f"{EVAL_METRICS}: best_step {best} has no scores under 'steps'; rerun `python -m stages.evaluate`")
    from boothline.training.checkpoints import checkpoint_at

    if checkpoint_at(best) is None:
        raise StageError(f"register.use_best_checkpoint: the best step {best} has no checkpoint {CHECKPOINTS}/step-{best}")
    return best


@contextlib.contextmanager
def model_directory(params: Params, card: dict, step: int) -> Iterator[Path]:
    """data/model itself, or a checkpoint written out as a full pipeline (LoRA weights fused)."""
    if step == card["step"]:
        yield MODEL_DIR
        return
    from boothline.training.checkpoints import checkpoint_at, load_checkpoint_pipeline
    from boothline.pipelines.loading import pick_device

    import torch

    checkpoint = checkpoint_at(step)
    path = checkpoint.path
    pipe = load_checkpoint_pipeline(path, params, pick_device("cpu"), torch.float32)
    with tempfile.TemporaryDirectory(prefix="boothline-checkpoint-") as tmp:
        out = Path(tmp) / "pipeline"
        pipe.save_pretrained(out, safe_serialization=True)
        checkpoint_card = {"kind": "full", "base": params.model.base, "base_id": base_model_id(params.model),
                           "step": step, "fingerprint": checkpoint.state["fingerprint"], "from_checkpoint": str(path),
                           "instance_prompt": params.instance_prompt, "class_prompt": params.class_prompt,
                           "resolution": params.train.resolution}
        (out / MODEL_CARD).write_text(json.dumps(checkpoint_card, indent=2) + "\n")
        yield out


# --- what the run records ------------------------------------------------------------------------------

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


def dvc_lock_tags() -> dict[str, str]:
    """`dvc.<path>` = the hash dvc.lock records for every data and model path of the pipeline."""
    if not DVC_LOCK.is_file():
        return {}
    lock = yaml.safe_load(DVC_LOCK.read_text()) or {}
    tags = {}
    for stage in (lock.get("stages") or {}).values():
        for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
            path, digest = entry.get("path", ""), entry.get("md5") or entry.get("etag")
            if digest and path.startswith("data/"):
                tags[f"dvc.{path}"] = digest
    return tags


# metrics.csv's windowed rate per step, under a name apart from the summary's overall `train.steps_per_s`.
CURVE_NAMES = {"steps_per_s": "window_steps_per_s"}


def loss_curves() -> dict[str, list[tuple[int, float]]]:
    if not TRAIN_METRICS.is_file():
        return {}
    curves: dict[str, list[tuple[int, float]]] = {}
    with TRAIN_METRICS.open() as f:
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


def model_key(card: dict, step: int) -> str:
    """What identifies a trained model: its training fingerprint and step."""
    if step == card["step"]:
        return f"{card['fingerprint']}@step-{step}"
    from boothline.training.checkpoints import checkpoint_at

    return f"{checkpoint_at(step).state['fingerprint']}@step-{step}"


def submission(params: Params, card: dict, report: dict, step: int, scores: dict, key: str, workdir: Path):
    from boothline.registry.store import EVAL_PREFIX, Submission

    summary = json.loads(TRAIN_SUMMARY.read_text()) if TRAIN_SUMMARY.is_file() else {}
    curves = loss_curves()
    histories = {**curves, **{f"steps.{key}": [(int(s), block[key]) for s, block in report.get("steps", {}).items()
                                               if block.get(key) is not None] for key in METRIC_KEYS}}
    loss_png = plot_loss(curves, workdir / "loss.png")
    artifacts = [("eval", EVAL_DIR), ("train", TRAIN_METRICS), ("train", TRAIN_SUMMARY)]
    artifacts += [("train", loss_png)] if loss_png else []
    kind = card["kind"] if step == card["step"] else "full"  # a checkpoint is registered as a full pipeline
    base = base_model_id(params.model)
    provenance = {**git_tags(), **dvc_lock_tags()}  # the version page shows its own tags; params are on its run
    version_provenance = {k: v for k, v in provenance.items() if not k.startswith("mlflow.")}
    return Submission(
        model_key=key,
        params=flat_params(params),
        metrics={**numbers(EVAL_PREFIX, {k: scores.get(k) for k in METRIC_KEYS}),
                 **numbers("baseline.", {k: report.get("baseline", {}).get(k) for k in METRIC_KEYS}),
                 **numbers("train.", summary)},
        histories={k: v for k, v in histories.items() if v},
        artifacts=artifacts,
        tags={**provenance, "base_model": base, "boothline.model_key": key, "boothline.kind": kind,
              "boothline.step": str(step), "subject": f"{params.subject.token} {params.subject.class_noun}"},
        version_tags={**version_provenance, "base_model": base, "boothline.step": str(step), "boothline.kind": kind},
        run_name=f"{model_name(params)}-step-{step}",
    )


def alias_uri(name: str, aliases: list[str], version: int) -> str:
    """How to load this version by alias: champion if it is, else candidate if it is, else by number."""
    from boothline.registry.store import CANDIDATE, CHAMPION

    for alias in (CHAMPION, CANDIDATE):
        if alias in aliases:
            return f"models:/{name}@{alias}"
    return f"models:/{name}/{version}"


# --- the stage -----------------------------------------------------------------------------------------

def run(params: Params) -> dict:
    started = time.perf_counter()
    card, report = read_inputs(params)
    step = chosen_step(params, card, report)
    scores = report if step == card["step"] else report["steps"][str(step)]
    name = model_name(params)
    reg = params.register

    from boothline.registry.store import store  # MLflow is imported only by the stage that needs it

    client = registry.connect(reg.tracking_uri)
    experiment = registry.experiment_id(client, reg.experiment, reg.artifact_location, reg.tracking_uri)
    key = model_key(card, step)
    version = registry.find_version(client, name, key)
    new_version = version is None
    if new_version:
        with tempfile.TemporaryDirectory(prefix="boothline-register-") as tmp, \
                model_directory(params, card, step) as directory:
            sub = submission(params, card, report, step, scores, key, Path(tmp))
            version = registry.log_and_register(client, experiment, name, directory, sub)
        log.info("registered %s version %s (step %d)", name, version.version, step)
    else:
        log.info("%s is already registered as %s version %s: not registering it again", key, name, version.version)
    decision = registry.apply_gate(client, name, version, scores, dict(reg.thresholds), reg.primary_metric)
    aliases = sorted(client.get_model_version(name, version.version).aliases)
    record = {
        "tracking_uri": reg.tracking_uri,
        "model_name": name,
        "version": int(version.version),
        "aliases": aliases,
        "promoted": decision.promoted,
        "reasons": decision.reasons,
        "new_version": new_version,
        "model_uri": f"models:/{name}/{version.version}",
        "alias_uri": alias_uri(name, aliases, version.version),
        "run_id": version.run_id,
        "model_key": key,
        "step": step,
        "primary_metric": reg.primary_metric,
        "primary_value": scores.get(reg.primary_metric),
    }
    atomic_write_text(REGISTRY_FILE, json.dumps(record, indent=2) + "\n")
    seconds = round(time.perf_counter() - started, 2)
    log.info("%s version %s: %s (%s); %s s", name, version.version, "promoted to champion" if decision.promoted
             else "not promoted", "; ".join(decision.reasons), seconds)
    return {**record, "wall_time_s": seconds}


def main() -> None:
    sys.exit(run_stage("register", run))


if __name__ == "__main__":
    main()
