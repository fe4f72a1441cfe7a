"""Turning a request into a job: the params file its flow run reads, what it costs, and the flow parameters.

A training runs the pipeline flow's validate, priors, train, evaluate and register stages in the subject's
workspace; its model is registered in the user's own MLflow store (`users/<id>/registry/`) under the
subject's id. A generation runs the batch flow in the user's workspace (`users/<id>/`), so its images land
in the user's own history log; it is planned here first (the same `build_job` the flow runs), so a bad
prompt, style or model is refused before anything is queued, and its price is known: one credit per image,
none for an image an identical earlier job already made.
"""

from __future__ import annotations

from pathlib import Path

from boothline.errors import USER_ERRORS
from boothline.paths import Workspace
from boothline.service.errors import ApiError
from boothline.service.jobs import TRAINING_STAGES, Jobs, new_job_id, write_params
from boothline.service.settings_schema import SettingsError, apply_settings, nested
from boothline.service.store import Job, Subject
from boothline.service.subjects import subject_workspace

GENERATION_KEYS = {"steps", "guidance", "scheduler", "negative_prompt", "width", "height", "sweep", "batch_size"}


def user_registry(state, user_id: int) -> str:
    return f"sqlite:///{(state.user_root(user_id) / 'registry' / 'mlflow.db').absolute()}"


def user_params_changes(state, user_id: int) -> dict:
    root = state.user_root(user_id)
    return {"register": {"tracking_uri": user_registry(state, user_id),
                         "artifact_location": str((root / "registry" / "artifacts").absolute())},
            "generate": {"history_dir": str((root / "data" / "history").absolute())}}


def check_webhook(state, url: str | None) -> str | None:
    if url is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(422, "invalid_request", f"webhook {url!r}: not an http(s) URL", field="webhook")
    if parts.hostname not in state.params.service.webhook_allow:
        raise ApiError(422, "webhook_not_allowed", f"webhook host {parts.hostname!r} is not in service.webhook_allow"
                       f" ({', '.join(state.params.service.webhook_allow) or 'empty: webhooks are off'})",
                       field="webhook")
    return url


def submit_training(jobs: Jobs, user_id: int, subject_id: str, settings: dict, webhook: str | None) -> Job:
    state = jobs.state
    webhook = check_webhook(state, webhook)
    with state.store.reading() as session:
        subject = session.get(Subject, subject_id)
    if subject is None or subject.user_id != user_id:
        raise ApiError(404, "not_found", f"no subject {subject_id!r}", field="subject")
    try:
        params = apply_settings(state.params, settings or {}, state.params.service.training_settings)
    except SettingsError as err:
        raise ApiError(422, "invalid_settings", err.reason, field=err.field) from None
    workspace = subject_workspace(state.root, user_id, subject_id)
    job_id = new_job_id()
    params_file = write_params(workspace / f"params-{job_id}.yaml", params, {
        **user_params_changes(state, user_id),
        "subject": {"instance_dir": str((workspace / "photos").absolute()), "token": subject.token,
                    "class_noun": subject.class_noun, "kind": subject.kind},
        "register": {**user_params_changes(state, user_id)["register"], "model_name": subject_id}})
    inputs = {"subject": subject_id, "settings": nested(settings or {}),
              "max_train_steps": params.train.max_train_steps}
    parameters = {"params_file": str(params_file), "workspace": str(workspace), "stages": TRAINING_STAGES}
    return jobs.accept(user_id, "training", job_id, workspace, inputs, state.params.service.training_credits,
                       parameters, webhook)


def submit_generation(jobs: Jobs, user_id: int, model: str, prompts: list[str], styles, seeds,
                      settings: dict, webhook: str | None) -> Job:
    from boothline.generation.planning import build_job
    from boothline.params import load_params

    state = jobs.state
    webhook = check_webhook(state, webhook)
    # Keys of the generate section, bare or dotted as GET /v1/settings lists them ("generate.steps").
    settings = {key.removeprefix("generate."): value for key, value in (settings or {}).items()}
    unknown = sorted(set(settings) - GENERATION_KEYS)
    if unknown:
        raise ApiError(422, "invalid_settings", f"not a generation setting: {', '.join(unknown)} (allowed: "
                       f"{', '.join(sorted(GENERATION_KEYS))})", field=f"settings.{unknown[0]}")
    if not model.startswith("models:/"):
        raise ApiError(422, "invalid_request", f"model {model!r}: one of your registered models, models:/<name>@<alias>"
                       " or models:/<name>/<version> (GET /v1/models)", field="model")
    root = state.user_root(user_id)
    job_id = new_job_id()
    params_file = write_params(root / "jobs" / f"{job_id}.yaml", state.params, user_params_changes(state, user_id))
    overrides = {**(settings or {}), "prompts": prompts, "styles": styles, "seeds": seeds, "model": model}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        plan = build_job(load_params(params_file), overrides=overrides, workspace=Workspace(root))
    except USER_ERRORS as err:
        raise ApiError(422, "invalid_request", str(err).splitlines()[0]) from None
    images = [{"image_id": image.image_id, "file": str(image.file)} for image in plan.images]
    reused = [i["image_id"] for i in images if Path(i["file"]).is_file()]
    cost = (len(images) - len(reused)) * state.params.service.image_credits
    inputs = {"model": model, "prompts": prompts, "styles": styles, "seeds": seeds, "settings": settings or {},
              "batch_job": plan.job_id, "images": images, "reused": reused}
    parameters = {"prompts": prompts, "styles": styles, "seeds": seeds, "model": model, "settings": settings or {},
                  "params_file": str(params_file), "workspace": str(root)}
    return jobs.accept(user_id, "generation", job_id, root, inputs, cost, parameters, webhook)
