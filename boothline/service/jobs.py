"""Jobs: trainings and generations accepted by the API and run as Prefect flow runs of the pipeline's flows.

The job table maps each job id to the flow run of its current attempt. Accepting a job holds its credits
and checks the user's queue in one write-locked transaction; `reconcile` (called every second by the API,
and once at start-up) reads each active job's flow run state and the files its stages write, and on the
way to a terminal state charges the credits once. A flow run that crashed (its worker was killed) is
submitted again as the next attempt: the stages resume (training from its checkpoint, generation skipping
finished images), so a job completes with each image logged once. Restarting the API loses nothing: the
table and the flow runs outlive it.
"""

from __future__ import annotations

import secrets
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import yaml
from sqlalchemy import func, select

from boothline.params import Params
from boothline.service import credits
from boothline.service.errors import ApiError, not_found
from boothline.service.store import ACTIVE, TERMINAL, Job

DEPLOYMENTS = {"training": "dreambooth-pipeline/service-training", "generation": "batch-generate/service-generation"}
TRAINING_STAGES = ["validate", "priors", "train", "evaluate", "register"]
MAX_ATTEMPTS = 3
# A running flow run without a heartbeat file either has not begun beating, or has just finished and removed
# it (a dead process cannot remove it); only after this long is it taken for one that died before its first beat.
NEVER_BEATEN_SECONDS = 600


@dataclass(frozen=True)
class RunState:
    status: str  # queued | running | succeeded | failed | canceled | crashed
    message: str | None = None
    started_at: datetime | None = None  # when this flow run (this attempt) began running


class Backend(Protocol):
    """Where flow runs happen: Prefect deployments (service.prefect_backend), or a test's stand-in."""

    def submit(self, deployment: str, parameters: dict, key: str) -> str: ...

    def state(self, flow_run_id: str) -> RunState: ...

    def cancel(self, flow_run_id: str) -> None: ...

    def crash(self, flow_run_id: str, message: str) -> None: ...

    def close(self) -> None:
        """Release what the calling thread holds (the job table's thread calls it as it stops)."""


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def write_params(path: Path, params: Params, changes: dict) -> Path:
    """A params file for one run: the service's params with `changes` (same shape) merged in."""
    from boothline.params import deep_merge, parse_params

    data = deep_merge(params.model_dump(mode="json"), changes)
    parse_params(data, str(path))  # refuse here, before anything is queued
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Jobs:
    def __init__(self, state, backend: Backend):
        self.state, self.backend = state, backend

    # accepting -------------------------------------------------------------------------------------------
    def accept(self, user_id: int, kind: str, job_id: str, workspace: Path, inputs: dict, cost: int,
               parameters: dict, webhook: str | None) -> Job:
        """Hold `cost` credits and queue the job, or refuse it (402 credits, 429 queue); then submit it."""
        now = self.state.clock()
        limit = self.state.params.service.max_queued_jobs
        with self.state.store.writing() as session:
            active = session.scalar(select(func.count()).select_from(Job)
                                    .where(Job.user_id == user_id, Job.status.in_(ACTIVE)))
            if active >= limit:
                raise ApiError(429, "queue_full", f"{active} of your jobs are queued or running; at most {limit}",
                               headers={"Retry-After": "30"})
            job = Job(id=job_id, user_id=user_id, kind=kind, status="queued", input=inputs, progress={},
                      workspace=str(workspace), credits_held=cost, webhook=webhook, created_at=now, version=1)
            session.add(job)
        try:
            credits.hold(self.state.store, user_id, job_id, cost, now)
        except credits.InsufficientCredits as err:
            with self.state.store.writing() as session:
                session.delete(session.get(Job, job_id))
            raise ApiError(402, "insufficient_credits", str(err), balance=err.balance.as_dict()) from None
        self._submit(job_id, parameters)
        return self.get(user_id, job_id)

    def _submit(self, job_id: str, parameters: dict | None = None) -> None:
        with self.state.store.writing() as session:
            job = session.get(Job, job_id)
            parameters = parameters or job.input["parameters"]
            job.input = {**job.input, "parameters": parameters}
            job.attempt += 1
            attempt, kind = job.attempt, job.kind
        try:
            run_id = self.backend.submit(DEPLOYMENTS[kind], parameters, key=f"{job_id}-{attempt}")
        except Exception as err:  # noqa: BLE001 - the job fails with the reason; its hold comes back
            self._finish(job_id, "failed", f"could not be queued: {type(err).__name__}: {err}")
            return
        with self.state.store.writing() as session:
            job = session.get(Job, job_id)
            job.flow_run_id, job.version = run_id, job.version + 1

    # reading ---------------------------------------------------------------------------------------------
    def get(self, user_id: int, job_id: str, kind: str | None = None) -> Job:
        with self.state.store.reading() as session:
            job = session.get(Job, job_id)
        if job is None or job.user_id != user_id or (kind and job.kind != kind):
            raise not_found(kind or "job", job_id)
        return job

    def queue_positions(self, jobs: list[Job]) -> dict[str, int]:
        """Each queued job's place in the line (1: next), the active jobs created before it ahead of it; one
        query however many jobs a listing shows."""
        queued = [job for job in jobs if job.status == "queued"]
        if not queued:
            return {}
        with self.state.store.reading() as session:
            line = sorted(session.scalars(select(Job.created_at).where(Job.status.in_(ACTIVE))))
        return {job.id: bisect_left(line, job.created_at) + 1 for job in queued}

    # changing --------------------------------------------------------------------------------------------
    def cancel(self, user_id: int, job_id: str, kind: str | None = None) -> Job:
        job = self.get(user_id, job_id, kind)
        if job.status in TERMINAL:
            raise ApiError(409, "not_cancelable", f"job {job_id} is already {job.status}")
        if job.flow_run_id:
            self.backend.cancel(job.flow_run_id)
        self._finish(job_id, "canceled", "canceled by the user")
        return self.get(user_id, job_id)

    def _finish(self, job_id: str, status: str, error: str | None, result: dict | None = None) -> None:
        """The terminal state, then the charge for what the job produced (images rendered; a training's price
        only if it succeeded); the rest of its hold comes back."""
        from boothline.service.progress import credits_used

        now = self.state.clock()
        with self.state.store.writing() as session:
            job = session.get(Job, job_id)
            if job.status in TERMINAL:
                return
            job.status, job.error, job.finished_at = status, error, now
            if result is not None:
                job.result = result
            job.version += 1
        used = credits_used(job, self.state)
        credits.settle(self.state.store, job_id, used, now)  # once per job, whatever calls it
        if job.webhook and not job.webhook_sent:
            self.notify(job)

    def notify(self, job: Job) -> None:
        """The finished job object to its webhook, in the background; marked sent once delivered."""
        from boothline.service.routes_jobs import job_json
        from boothline.service.webhooks import deliver_later

        def done(ok: bool) -> None:
            if ok:
                self.update(job.id, webhook_sent=True)

        deliver_later(job.webhook, job_json(self.state, self, self.get(job.user_id, job.id)),
                      self.state.signer.secret, self.state.params.service.webhook_allow, done)

    def update(self, job_id: str, **changes) -> None:
        with self.state.store.writing() as session:
            job = session.get(Job, job_id)
            changed = {k: v for k, v in changes.items() if getattr(job, k) != v}
            for key, value in changed.items():
                setattr(job, key, value)
            if changed:
                job.version += 1

    def silence(self, job: Job, run: RunState) -> float | None:
        """Seconds a running job's flow run has not beaten its heartbeat, if that is too long; else None."""
        from boothline.paths import Workspace

        beat = Workspace(Path(job.workspace)).flow_run_heartbeat(job.flow_run_id)
        now = self.state.clock().timestamp()
        if beat.is_file():
            silent = now - beat.stat().st_mtime
            return silent if silent > self.state.params.service.heartbeat_timeout_s else None
        if run.started_at is not None and now - run.started_at.timestamp() > NEVER_BEATEN_SECONDS:
            return now - run.started_at.timestamp()  # this attempt's start: the job's first one may be long past
        return None

    def reconcile(self) -> None:
        """Bring every active job up to date with its flow run and its files."""
        from boothline.service.progress import read_progress, read_result

        with self.state.store.reading() as session:
            active = session.scalars(select(Job).where(Job.status.in_(ACTIVE))).all()
        for job in active:
            if not job.flow_run_id:
                continue
            run = self.backend.state(job.flow_run_id)
            if run.status == "running" and (silent := self.silence(job, run)):
                message = f"its process stopped: no heartbeat for {silent:.0f} s (the worker was stopped?)"
                self.backend.crash(job.flow_run_id, message)
                run = RunState("crashed", message)
            progress = read_progress(job, self.state)
            if run.status == "crashed":
                if job.attempt < MAX_ATTEMPTS:
                    self.update(job.id, progress=progress)
                    self._submit(job.id)  # its stages resume where the crashed run stopped
                else:
                    self._finish(job.id, "failed", f"crashed {job.attempt} times: {run.message}")
            elif run.status in TERMINAL:
                result = read_result(job, self.state) if run.status == "succeeded" else None
                self.update(job.id, progress=progress)
                self._finish(job.id, run.status, None if run.status == "succeeded" else run.message, result)
            else:
                started = job.started_at or (self.state.clock() if run.status == "running" else None)
                self.update(job.id, status=run.status, progress=progress, started_at=started)
