"""The `/v1` API: FastAPI over the service's store and the pipeline's own stages.

`create_app(params, workspace)` builds it; `boothline serve` runs it under uvicorn on 127.0.0.1. Every
endpoint needs `Authorization: Bearer <key>` except `/health`, `/docs`, `/openapi.json` and the studio's
static files; URLs that browsers fetch themselves carry a signature instead (service.signing).
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from fastapi import Depends, FastAPI, File, Form, Query, UploadFile
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select

from boothline.params import Params
from boothline.paths import Workspace
from boothline.service import credits
from boothline.service.accounts import Account
from boothline.service.auth import account_of
from boothline.service.errors import ApiError, install_handlers, not_found
from boothline.service.jobs import Backend, Jobs
from boothline.service.limits import RateLimiter
from boothline.service.routes_images import images_router
from boothline.service.routes_jobs import jobs_router
from boothline.service.settings_schema import GENERATION_SETTINGS, describe
from boothline.service.signing import Signer, load_secret
from boothline.service.store import Store, Subject, User, open_store
from boothline.service.subjects import create_subject, subject_json, subject_workspace
from boothline.service.uploads import Upload

log = logging.getLogger("boothline.service")

STUDIO = Path(__file__).parent / "studio"
# The studio page loads, fetches and shows nothing but this origin's files; the browser enforces it.
STUDIO_POLICY = ("default-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
                 "form-action 'self'; frame-ancestors 'none'")


class StudioFiles(StaticFiles):
    """The web studio (`/`): plain HTML, CSS and JavaScript over this API, no key needed to fetch them."""

    async def get_response(self, path: str, scope):
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = STUDIO_POLICY
        response.headers["Cache-Control"] = "no-cache"  # a new release of the page is picked up at once
        return response


@dataclass
class ServiceState:
    params: Params
    root: Path
    store: Store
    signer: Signer
    limiter: RateLimiter
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    def account_by_id(self, user_id: int) -> Account | None:
        with self.store.reading() as session:
            user = session.get(User, user_id)
        return Account(user.id, user.name) if user else None

    def user_root(self, user_id: int) -> Path:
        return self.root / "users" / str(user_id)

    def check_storage(self, user_id: int, adding: int) -> None:
        used = sum(p.stat().st_size for p in self.user_root(user_id).rglob("*") if p.is_file())
        limit = self.params.service.max_storage_mb * 1e6
        if used + adding > limit:
            raise ApiError(413, "storage_full", f"{(used + adding) / 1e6:.1f} MB would exceed your "
                           f"{self.params.service.max_storage_mb:g} MB; delete subjects or images first")


def encode_cursor(created_at: datetime, ident: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), ident]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(ident)
    except (ValueError, TypeError):
        raise ApiError(422, "invalid_request", "cursor: not a cursor this API returned", field="cursor") from None


def page(session, model, user_id: int, cursor: str | None, limit: int, kind: str | None = None):
    """Newest first, `limit` rows after `cursor`, and the cursor of the next page (None at the end)."""
    query = select(model).where(model.user_id == user_id)
    if kind is not None:
        query = query.where(model.kind == kind)
    if cursor:
        at, ident = decode_cursor(cursor)
        query = query.where((model.created_at < at) | ((model.created_at == at) & (model.id < ident)))
    rows = session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].created_at, rows[-1].id) if more else None)


def reconciling(jobs: Jobs, every: float):
    """The app's lifespan: bring active jobs up to date once at start-up, then every `every` seconds."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    jobs.reconcile()
                except Exception:  # noqa: BLE001 - a failed round is logged; the next one tries again
                    log.exception("reconciling jobs failed")
                stop.wait(every)
            jobs.backend.close()  # this thread's Prefect client

        thread = threading.Thread(target=loop, name="boothline-jobs", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(10)

    return lifespan


def create_app(params: Params, workspace: Workspace = Workspace(), clock=None, backend: Backend | None = None,
               reconcile_every: float = 1.0) -> FastAPI:
    root = workspace.resolve(params.service.root)
    state = ServiceState(params, root, open_store(params.service.database_url, root),
                         Signer(load_secret(root), params.service.signed_url_seconds),
                         RateLimiter(params.service.requests_per_minute))
    if clock:
        state.clock = clock
    if backend is None:
        from boothline.service.prefect_backend import PrefectBackend

        backend = PrefectBackend()
    jobs = Jobs(state, backend)
    app = FastAPI(title="boothline", version="1", description=__doc__, lifespan=reconciling(jobs, reconcile_every))
    app.state.service = state
    app.state.jobs = jobs
    install_handlers(app)
    app.include_router(jobs_router(state, jobs))
    app.include_router(images_router(state, jobs))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/me")  # on the event loop, like the other polled reads (see auth.account_of)
    async def me(account: Account = Depends(account_of)) -> dict:
        return {"user": account.name, "credits": credits.balance(state.store, account.user_id, state.clock()).as_dict()}

    @app.post("/v1/subjects", status_code=201)
    async def post_subject(photos: list[UploadFile] = File(...), token: str = Form(...), class_noun: str = Form(...),
                           kind: str = Form("object"), account: Account = Depends(account_of)) -> dict:
        limits = params.service.uploads
        uploads = []
        for photo in photos:
            data = await photo.read(int(limits.max_file_mb * 1e6) + 1)  # never more than the limit plus one byte
            uploads.append(Upload(photo.filename or "unnamed", data))
        return create_subject(state, account.user_id, uploads, token, class_noun, kind)

    @app.get("/v1/subjects")
    def list_subjects(cursor: str | None = None, limit: int = Query(20, ge=1, le=100),
                      account: Account = Depends(account_of)) -> dict:
        with state.store.reading() as session:
            rows, next_cursor = page(session, Subject, account.user_id, cursor, limit)
        return {"data": [subject_json(s) for s in rows], "next_cursor": next_cursor}

    def own_subject(session, subject_id: str, account: Account) -> Subject:
        subject = session.get(Subject, subject_id)
        if subject is None or subject.user_id != account.user_id:
            raise not_found("subject", subject_id)
        return subject

    @app.get("/v1/subjects/{subject_id}")
    def get_subject(subject_id: str, account: Account = Depends(account_of)) -> dict:
        with state.store.reading() as session:
            return subject_json(own_subject(session, subject_id, account))

    @app.delete("/v1/subjects/{subject_id}", status_code=204)
    def delete_subject(subject_id: str, account: Account = Depends(account_of)) -> None:
        with state.store.writing() as session:
            session.delete(own_subject(session, subject_id, account))
        shutil.rmtree(subject_workspace(root, account.user_id, subject_id), ignore_errors=True)

    @app.get("/v1/samplers")
    def samplers(account: Account = Depends(account_of)) -> dict:
        from boothline.pipelines.loading import A1111_SAMPLER_NAMES, SCHEDULERS

        return {"data": [{"name": name, "a1111_name": A1111_SAMPLER_NAMES[name], "class": cls,
                          "settings": settings} for name, (cls, settings) in SCHEDULERS.items()]}

    @app.get("/v1/settings")
    def settings(account: Account = Depends(account_of)) -> dict:
        return {"training": describe(params, params.service.training_settings),
                "generation": describe(params, GENERATION_SETTINGS)}

    app.mount("/", StudioFiles(directory=STUDIO, html=True), name="studio")  # last: every other path first
    return app
