"""`/v1/trainings`, `/v1/generations` and `/v1/jobs/{id}/events`: create (201), read, list, cancel, follow.

A job object is `{id, kind, status, created_at, started_at, finished_at, input, queue_position, progress,
result, error, urls}`; its `urls` are signed where a browser fetches them itself (events, images, grids).
The event stream sends the job object whenever it changes, the current one first (a client that
reconnects is up to date at once), and ends after a terminal state.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from boothline.paths import Workspace
from boothline.service.accounts import Account
from boothline.service.auth import account_of
from boothline.service.errors import not_found
from boothline.service.store import TERMINAL, Job

HIDDEN_INPUTS = ("parameters", "images", "reused", "batch_job")


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str
    settings: dict = Field(default_factory=dict)
    webhook: str | None = None


class GenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    prompts: list[str] = Field(min_length=1, max_length=20)
    styles: list[str] | Literal["all"] = ["photographic"]
    seeds: int | list[int] = 1
    settings: dict = Field(default_factory=dict)
    webhook: str | None = None


def job_json(state, jobs, job: Job, queue_positions: dict[str, int] | None = None) -> dict:
    """The job object; `queue_positions` (Jobs.queue_positions) where a listing has them for all its jobs."""
    if queue_positions is None:
        queue_positions = jobs.queue_positions([job])
    sign = state.signer.sign
    kind = "trainings" if job.kind == "training" else "generations"
    progress = dict(job.progress or {})
    urls = {"self": f"/v1/{kind}/{job.id}", "cancel": f"/v1/{kind}/{job.id}/cancel",
            "events": sign(job.user_id, f"/v1/jobs/{job.id}/events")}
    if job.kind == "generation":
        urls["images"] = [sign(job.user_id, f"/v1/images/{i}") for i in progress.get("image_ids", [])]
    else:
        urls["validation_grids"] = [sign(job.user_id, f"/v1/trainings/{job.id}/grids/{g}")
                                    for g in progress.get("validation_grids", [])]
    return {"id": job.id, "kind": job.kind, "status": job.status,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "input": {k: v for k, v in job.input.items() if k not in HIDDEN_INPUTS},
            "queue_position": queue_positions.get(job.id), "progress": progress, "result": job.result,
            "error": job.error, "credits_held": job.credits_held, "attempt": job.attempt, "urls": urls}


def jobs_router(state, jobs) -> APIRouter:
    from boothline.service.app import page
    from boothline.service.submissions import submit_generation, submit_training

    router = APIRouter(prefix="/v1")

    @router.post("/trainings", status_code=201)
    def post_training(body: TrainingRequest, account: Account = Depends(account_of)) -> dict:
        return job_json(state, jobs, submit_training(jobs, account.user_id, body.subject, body.settings, body.webhook))

    @router.post("/generations", status_code=201)
    def post_generation(body: GenerationRequest, account: Account = Depends(account_of)) -> dict:
        job = submit_generation(jobs, account.user_id, body.model, body.prompts, body.styles, body.seeds,
                                body.settings, body.webhook)
        return job_json(state, jobs, job)

    for kind, path in (("training", "trainings"), ("generation", "generations")):
        async def listing(cursor: str | None = None, limit: int = Query(20, ge=1, le=100),
                          account: Account = Depends(account_of), kind=kind) -> dict:
            with state.store.reading() as session:
                rows, next_cursor = page(session, Job, account.user_id, cursor, limit, kind=kind)
            positions = jobs.queue_positions(rows)
            return {"data": [job_json(state, jobs, j, positions) for j in rows], "next_cursor": next_cursor}

        async def one(job_id: str, account: Account = Depends(account_of), kind=kind) -> dict:  # see account_of
            return job_json(state, jobs, jobs.get(account.user_id, job_id, kind))

        def cancel(job_id: str, account: Account = Depends(account_of), kind=kind) -> dict:
            return job_json(state, jobs, jobs.cancel(account.user_id, job_id, kind))

        router.add_api_route(f"/{path}", listing, methods=["GET"])
        router.add_api_route(f"/{path}/{{job_id}}", one, methods=["GET"])
        router.add_api_route(f"/{path}/{{job_id}}/cancel", cancel, methods=["POST"])

    @router.get("/trainings/{job_id}/grids/{name}")
    def validation_grid(job_id: str, name: str, account: Account = Depends(account_of)):
        """A validation grid the training wrote (its name as the job's progress lists it)."""
        job = jobs.get(account.user_id, job_id, "training")
        grids = Workspace(Path(job.workspace)).validation_dir
        if name not in (job.progress or {}).get("validation_grids", []):
            raise not_found("validation grid", name)
        return FileResponse(grids / name, media_type="image/png")

    @router.get("/jobs/{job_id}/events")
    async def events(job_id: str, request: Request, account: Account = Depends(account_of)):
        jobs.get(account.user_id, job_id)  # 404 for another user's job

        async def stream():
            seen, quiet = None, 0.0
            while not await request.is_disconnected():
                job = jobs.get(account.user_id, job_id)
                if job.version != seen:
                    seen, quiet = job.version, 0.0
                    yield f"id: {job.version}\nevent: job\ndata: {json.dumps(job_json(state, jobs, job))}\n\n"
                    if job.status in TERMINAL:
                        return
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)
                quiet += 0.5

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router
