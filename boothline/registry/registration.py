"""Registering the trained model (or its best checkpoint): what to register, checked before anything is
logged; the run's params, metrics, loss curves, artifacts and tags; the version; the promotion gate."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from boothline.errors import StageError
from boothline.evaluation.metrics import METRIC_KEYS
from boothline.params import Params
from boothline.paths import Workspace
from boothline.pipelines.loading import MODEL_CARD, base_model_id, read_model_card
from boothline.registry.provenance import dvc_lock_tags, flat_params, git_tags, loss_curves, numbers, plot_loss
from boothline.training.checkpoints import checkpoint_at

if TYPE_CHECKING:
    from boothline.registry.store import Decision

log = logging.getLogger(__name__)


def model_name(params: Params) -> str:
    if params.register.model_name:
        return params.register.model_name
    slug = re.sub(r"[^a-z0-9-]+", "-", params.subject.instance_dir.name.lower()).strip("-")
    return f"boothline-{slug or 'subject'}"


def read_inputs(workspace: Workspace) -> tuple[dict, dict]:
    model_dir, metrics = workspace.model_dir, workspace.eval_metrics
    card = read_model_card(model_dir) if model_dir.is_dir() else None
    if card is None:
        raise StageError(f"{model_dir}: no trained model ({MODEL_CARD} missing); run `python -m stages.train` first")
    if not metrics.is_file():
        raise StageError(f"{metrics}: not found; run `python -m stages.evaluate` first (or `dvc repro`)")
    report = json.loads(metrics.read_text())
    scored = report.get("model", {})
    if (scored.get("fingerprint"), scored.get("step")) != (card.get("fingerprint"), card.get("step")):
        raise StageError(f"{metrics}: scores another model (step {scored.get('step')}, fingerprint "
                         f"{scored.get('fingerprint')}) than {model_dir} (step {card.get('step')}, fingerprint "
                         f"{card.get('fingerprint')}); rerun `python -m stages.evaluate`")
    if not card.get("fingerprint"):
        raise StageError(f"{model_dir / MODEL_CARD}: has no training fingerprint; retrain with "
                         "`python -m stages.train`")
    return card, report


def chosen_step(params: Params, card: dict, report: dict, workspace: Workspace) -> int:
    """The final step, or with `register.use_best_checkpoint` the best step the evaluation found."""
    best, metrics = report.get("best_step"), workspace.eval_metrics
    if not params.register.use_best_checkpoint or best is None or best == card["step"]:
        return card["step"]
    if report.get("best_metric") != params.register.primary_metric:
        raise StageError(f"{metrics}: best step chosen by {report.get('best_metric')}, but "
                         f"register.primary_metric is {params.register.primary_metric}; rerun "
                         "`python -m stages.evaluate`")
    if str(best) not in report.get("steps", {}):
        raise StageError(f"{metrics}: best_step {best} has no scores under 'steps'; rerun `python -m stages.evaluate`")
    if checkpoint_at(best, workspace.checkpoints) is None:
        raise StageError(f"register.use_best_checkpoint: the best step {best} has no checkpoint "
                         f"{workspace.checkpoints}/step-{best}")
    return best


@contextlib.contextmanager
def model_directory(params: Params, card: dict, step: int, workspace: Workspace) -> Iterator[Path]:
    """data/model itself, or a checkpoint written out as a full pipeline (LoRA weights fused)."""
    if step == card["step"]:
        yield workspace.model_dir
        return
    import torch

    from boothline.pipelines.loading import pick_device
    from boothline.training.checkpoints import load_checkpoint_pipeline

    checkpoint = checkpoint_at(step, workspace.checkpoints)
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


def model_key(card: dict, step: int, workspace: Workspace) -> str:
    """What identifies a trained model: its training fingerprint and step."""
    if step == card["step"]:
        return f"{card['fingerprint']}@step-{step}"
    return f"{checkpoint_at(step, workspace.checkpoints).state['fingerprint']}@step-{step}"


def submission(params: Params, card: dict, report: dict, step: int, scores: dict, key: str, workdir: Path,
               workspace: Workspace):
    from boothline.registry.store import EVAL_PREFIX, Submission

    ws = workspace
    summary = json.loads(ws.train_summary.read_text()) if ws.train_summary.is_file() else {}
    curves = loss_curves(ws.train_metrics)
    histories = {**curves, **{f"steps.{key}": [(int(s), block[key]) for s, block in report.get("steps", {}).items()
                                               if block.get(key) is not None] for key in METRIC_KEYS}}
    loss_png = plot_loss(curves, workdir / "loss.png")
    artifacts = [("eval", ws.eval_dir), ("train", ws.train_metrics), ("train", ws.train_summary)]
    artifacts += [("train", loss_png)] if loss_png else []
    kind = card["kind"] if step == card["step"] else "full"  # a checkpoint is registered as a full pipeline
    base = base_model_id(params.model)
    # The version page shows its own tags; the params are on its run.
    provenance = {**git_tags(), **dvc_lock_tags(ws.root / "dvc.lock")}
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


def register_model(params: Params, workspace: Workspace) -> tuple[dict, Decision]:
    """Register (or find) the chosen model and gate it; returns what data/registry.json records, and the
    gate's decision."""
    card, report = read_inputs(workspace)  # checked before anything is logged
    step = chosen_step(params, card, report, workspace)
    scores = report if step == card["step"] else report["steps"][str(step)]
    name = model_name(params)
    reg = params.register

    from boothline.registry import store  # MLflow is imported only by the stage that needs it

    tracking_uri = workspace.tracking_uri(reg.tracking_uri)
    artifacts = reg.artifact_location
    if "://" not in artifacts:  # a local artifact store lies in the workspace, beside its database
        artifacts = str(workspace.resolve(artifacts))
    client = store.connect(tracking_uri)
    experiment = store.experiment_id(client, reg.experiment, artifacts, tracking_uri)
    key = model_key(card, step, workspace)
    version = store.find_version(client, name, key)
    new_version = version is None
    if new_version:
        with tempfile.TemporaryDirectory(prefix="boothline-register-") as tmp, \
                model_directory(params, card, step, workspace) as directory:
            sub = submission(params, card, report, step, scores, key, Path(tmp), workspace)
            version = store.log_and_register(client, experiment, name, directory, sub)
        log.info("registered %s version %s (step %d)", name, version.version, step)
    else:
        log.info("%s is already registered as %s version %s: not registering it again", key, name, version.version)
    decision = store.apply_gate(client, name, version, scores, dict(reg.thresholds), reg.primary_metric)
    aliases = sorted(client.get_model_version(name, version.version).aliases)
    record = {
        "tracking_uri": tracking_uri,
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
    return record, decision
