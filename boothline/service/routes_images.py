"""`/v1/history`, `/v1/images/{id}` (+ `/params`, `/regenerate`, DELETE), `/v1/exports`, `/v1/styles`,
`/v1/models`: a user's images and what they can make more with.

Image, export and thumbnail URLs in responses are signed (browsers fetch them without the key header).
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
import zipfile
from pathlib import Path

import pandas as pd
from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from boothline.service import credits
from boothline.service.accounts import Account
from boothline.service.auth import account_of
from boothline.service.errors import ApiError, not_found
from boothline.service.gallery import Gallery, image_record, plain

EXPORT_COLUMNS = ("image_id", "file", "prompt", "style", "full_prompt", "negative_prompt", "seed", "steps", "guidance",
                  "scheduler", "width", "height", "model_version", "model_uri", "created_at")
THUMBNAIL_PROMPT = "a photo of a {class_noun} on the beach"


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_ids: list[str] = Field(min_length=1, max_length=500)


def image_json(state, user_id: int, record: dict) -> dict:
    """An image record (gallery.image_record) with its signed URL and its parameters' URL."""
    return {**record, "url": state.signer.sign(user_id, f"/v1/images/{record['image_id']}"),
            "params_url": f"/v1/images/{record['image_id']}/params"}


def images_router(state, jobs) -> APIRouter:
    from boothline.service.app import decode_cursor, encode_cursor

    router = APIRouter(prefix="/v1")
    gallery = Gallery(state)
    state.gallery = gallery

    @router.get("/history")  # on the event loop, like the other polled reads (see auth.account_of)
    async def history(prompt: str | None = None, style: str | None = None, model: str | None = None,
                      since: str | None = None, until: str | None = None, cursor: str | None = None,
                      limit: int = Query(50, ge=1, le=200), account: Account = Depends(account_of)) -> dict:
        from boothline.generation.history import HistoryError

        try:
            listing = gallery.listing(account.user_id)
            positions = listing.matching(prompt=prompt, style=style, model=model, since=since, until=until)
        except HistoryError as err:
            raise ApiError(422, "invalid_request", str(err), field="since" if since else "until") from None
        if cursor:
            at, image_id = decode_cursor(cursor)
            after = (pd.Timestamp(at), image_id)
            positions = [i for i in positions if listing.keys[i] < after]
        chosen, more = positions[:limit], len(positions) > limit
        last = listing.keys[chosen[-1]] if more else None
        return {"data": [image_json(state, account.user_id, listing.records[i]) for i in chosen],
                "next_cursor": encode_cursor(last[0].to_pydatetime(), last[1]) if more else None}

    @router.get("/images/{image_id}")
    def image(image_id: str, account: Account = Depends(account_of)):
        row = gallery.row(account.user_id, image_id)
        if not Path(row["file"]).is_file():
            raise not_found("image", image_id)
        return FileResponse(row["file"], filename=Path(row["file"]).name)

    @router.get("/images/{image_id}/params")
    def image_params(image_id: str, account: Account = Depends(account_of)) -> dict:
        from PIL import Image

        row = gallery.row(account.user_id, image_id)
        with Image.open(row["file"]) as png:
            parameters = png.info.get("parameters")
        return {**image_json(state, account.user_id, image_record(row)), "parameters": parameters}

    @router.delete("/images/{image_id}", status_code=204)
    def delete_image(image_id: str, account: Account = Depends(account_of)) -> None:
        gallery.delete(account.user_id, image_id)

    @router.post("/images/{image_id}/regenerate")
    def regenerate_image(image_id: str, account: Account = Depends(account_of)) -> dict:
        """Render the logged image again (one credit) and say whether its pixels match, bit for bit."""
        from boothline.generation.regenerate import regenerate
        from boothline.params import deep_merge, parse_params
        from boothline.paths import Workspace
        from boothline.service.submissions import user_params_changes

        row = gallery.row(account.user_id, image_id)
        hold_id = f"regen_{secrets.token_hex(8)}"
        credits_ = state.params.service.image_credits
        try:
            credits.hold(state.store, account.user_id, hold_id, credits_, state.clock())
        except credits.InsufficientCredits as err:
            raise ApiError(402, "insufficient_credits", str(err), balance=err.balance.as_dict()) from None
        used = 0
        try:
            root = state.user_root(account.user_id)
            params = parse_params(deep_merge(state.params.model_dump(mode="json"),
                                             user_params_changes(state, account.user_id)))
            result = regenerate(image_id, params, out=root / "data" / "regenerated" / Path(row["file"]).name,
                                history_dir=gallery.history_dir(account.user_id), workspace=Workspace(root))
            used = credits_
        finally:
            credits.settle(state.store, hold_id, used, state.clock())
        return {"image_id": image_id, "identical": result["identical"], "original": result["original"],
                "url": state.signer.sign(account.user_id, f"/v1/images/{image_id}")}

    @router.post("/exports", status_code=201)
    def export(body: ExportRequest, account: Account = Depends(account_of)) -> dict:
        rows = [gallery.row(account.user_id, i) for i in dict.fromkeys(body.image_ids)]
        export_id = "exp_" + secrets.token_hex(8)
        out = state.user_root(account.user_id) / "exports" / f"{export_id}.zip"
        out.parent.mkdir(parents=True, exist_ok=True)
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for row in rows:
                name = Path(row["file"]).name
                archive.write(row["file"], f"images/{name}")
                writer.writerow({**{k: plain(row.get(k)) for k in EXPORT_COLUMNS}, "file": f"images/{name}"})
            archive.writestr("metadata.csv", table.getvalue())
        tmp.replace(out)
        url = state.signer.sign(account.user_id, f"/v1/exports/{export_id}")
        return {"id": export_id, "images": len(rows), "bytes": out.stat().st_size, "url": url}

    @router.get("/exports/{export_id}")
    def export_file(export_id: str, account: Account = Depends(account_of)):
        path = state.user_root(account.user_id) / "exports" / f"{export_id}.zip"
        if not export_id.startswith("exp_") or not export_id[4:].isalnum() or not path.is_file():
            raise not_found("export", export_id)
        return FileResponse(path, filename=f"{export_id}.zip", media_type="application/zip")

    thumbnails = Thumbnails(state)

    @router.get("/styles")
    def styles(account: Account = Depends(account_of)) -> dict:
        from boothline.generation.styles import load_styles

        return {"data": [{"name": s.name, "description": s.description, "prompt": s.prompt, "negative": s.negative,
                          "settings": s.settings,
                          "thumbnail_url": state.signer.sign(account.user_id, f"/v1/styles/{s.name}/thumbnail")}
                         for s in load_styles().values()]}

    @router.get("/styles/{name}/thumbnail")
    def style_thumbnail(name: str, account: Account = Depends(account_of)):
        return FileResponse(thumbnails.path(name), media_type="image/png")

    @router.get("/models")
    def models(account: Account = Depends(account_of)) -> dict:
        return {"data": registered_models(state, account.user_id)}

    return router


class Thumbnails:
    """One picture per style, rendered by the service's base model on first request and kept on disk."""

    def __init__(self, state):
        self.state, self.pipe, self.lock = state, None, threading.Lock()

    def path(self, name: str) -> Path:
        from boothline.generation.prompts import enhance
        from boothline.generation.styles import load_styles
        from boothline.pipelines.loading import base_model_id, load_pipeline
        from boothline.pipelines.sampling import Request, render_batch

        styles = load_styles()
        if name not in styles:
            raise not_found("style", name)
        params = self.state.params
        model_key = base_model_id(params.model).replace("/", "_").replace(":", "_")
        path = self.state.root / "styles" / model_key / f"{name}.png"
        if path.is_file():
            return path
        with self.lock:
            if not path.is_file():
                if self.pipe is None:
                    self.pipe = load_pipeline(params.model.base, model=params.model, scheduler=params.model.scheduler)
                subject = params.subject
                final = enhance(THUMBNAIL_PROMPT.format(class_noun=subject.class_noun), styles[name],
                                token=subject.token, class_noun=subject.class_noun,
                                quality_tokens=params.generate.quality_tokens,
                                default_negative=params.generate.negative_prompt)
                size = params.train.resolution
                request = Request(final.prompt, 0, final.negative, params.generate.steps, params.generate.guidance,
                                  size, size)
                image = render_batch(self.pipe, [request])[0]
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path.with_suffix(".tmp.png"))
                path.with_suffix(".tmp.png").replace(path)
        return path


def registered_models(state, user_id: int) -> list[dict]:
    """The user's registered models: every version with its aliases and evaluation metrics."""
    from mlflow import MlflowClient

    from boothline.service.submissions import user_registry

    if not (state.user_root(user_id) / "registry" / "mlflow.db").is_file():
        return []
    uri = user_registry(state, user_id)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # never the process's default registry
    out = []
    for model in client.search_registered_models():
        versions = []
        for version in client.search_model_versions(f"name = '{model.name}'"):
            run = client.get_run(version.run_id) if version.run_id else None
            versions.append({"version": int(version.version), "aliases": list(version.aliases),
                             "uri": f"models:/{model.name}/{version.version}",
                             "metrics": dict(run.data.metrics) if run else {},
                             "created_at": version.creation_timestamp})
        out.append({"name": model.name, "aliases": dict(model.aliases or {}),
                    "uri": f"models:/{model.name}@champion" if "champion" in (model.aliases or {}) else None,
                    "versions": sorted(versions, key=lambda v: -v["version"])})
    return out
