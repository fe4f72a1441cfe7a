"""What a job has done so far, read from the files its stages write in its workspace (the API and the worker
share the disk): training steps and losses, validation grids, evaluation metrics and the registered version;
a generation's finished images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from boothline.paths import Workspace
from boothline.service.store import Job


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished_images(job: Job) -> list[str]:
    """Image ids of a generation whose files exist, in job order."""
    return [image["image_id"] for image in job.input.get("images", []) if Path(image["file"]).is_file()]


def read_progress(job: Job, state) -> dict:
    space = Workspace(Path(job.workspace))
    if job.kind == "generation":
        done = finished_images(job)
        return {"images_done": len(done), "images_total": len(job.input.get("images", [])), "image_ids": done}
    total = int(job.input.get("max_train_steps", 0))
    losses = []
    try:
        with open(space.train_metrics) as f:
            losses = [{"step": int(r["step"]), "loss": float(r["loss"])} for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        pass
    live = _json(space.train_dir / "progress.json") or {}
    step = max([live.get("step", 0)] + [row["step"] for row in losses])
    rate = live.get("steps_per_s")
    grids = sorted(p.name for p in space.validation_dir.glob("*.png")) if space.validation_dir.is_dir() else []
    return {"step": step, "total": total, "loss": live.get("loss", losses[-1]["loss"] if losses else None),
            "eta_seconds": round((total - step) / rate, 1) if rate and total > step else None,
            "losses": losses, "validation_grids": grids,
            "stage": live.get("stage") or ("evaluate" if space.eval_metrics.is_file() else None)}


def read_result(job: Job, state) -> dict:
    space = Workspace(Path(job.workspace))
    if job.kind == "generation":
        return {"image_ids": finished_images(job)}
    metrics = _json(space.eval_metrics) or {}
    keys = ("dino", "clip_i", "clip_t", "pres", "div", "latent_fidelity")
    return {"metrics": {k: metrics.get(k) for k in keys},
            "baseline": {k: (metrics.get("baseline") or {}).get(k) for k in keys},
            "registered": _json(space.registry_file)}


def credits_used(job: Job, state) -> int:
    service = state.params.service
    if job.kind == "generation":
        reused = set(job.input.get("reused", ()))
        return sum(1 for i in finished_images(job) if i not in reused) * service.image_credits
    return service.training_credits if job.status == "succeeded" else 0
