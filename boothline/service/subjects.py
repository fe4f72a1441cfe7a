"""Subjects: a user's photos stored in the subject's own workspace and checked by the validate stage itself,
synchronously, so the answer is 201 with what was accepted, or 422 with every per-file reason the stage gives
(named by the client's file names). A refused upload leaves nothing behind."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

from boothline.errors import StageError
from boothline.params import Params, deep_merge, parse_params
from boothline.paths import Workspace
from boothline.service.errors import ApiError
from boothline.service.store import Subject
from boothline.service.uploads import Refusal, Upload, check_uploads, display_name, stored_name

KINDS = ("object", "live")


def subject_workspace(root: Path, user_id: int, subject_id: str) -> Path:
    return root / "users" / str(user_id) / "subjects" / subject_id


def subject_params(base: Params, workspace: Path, subject: Subject) -> Params:
    """The service's params with this subject's photos, token, class and kind."""
    return parse_params(deep_merge(base.model_dump(mode="json"), {"subject": {
        "instance_dir": str((workspace / "photos").absolute()), "token": subject.token,
        "class_noun": subject.class_noun, "kind": subject.kind}}), "subject")


def create_subject(state, user_id: int, uploads: list[Upload], token: str, class_noun: str, kind: str) -> dict:
    from stages import validate

    if kind not in KINDS:
        raise ApiError(422, "invalid_request", f"kind {kind!r}: must be one of {', '.join(KINDS)}", field="kind")
    for field, value in (("token", token), ("class_noun", class_noun)):
        if not value.strip() or len(value) > 64 or (field == "token" and any(c.isspace() for c in value)):
            raise ApiError(422, "invalid_request", f"{field} {value!r}: one word of at most 64 characters"
                           if field == "token" else f"{field} {value!r}: 1-64 characters", field=field)
    try:
        check_uploads(uploads, state.params.service.uploads)
        names = [stored_name(i + 1, u, state.params.service.uploads) for i, u in enumerate(uploads)]
    except Refusal as refusal:
        raise ApiError(refusal.status, "upload_refused", refusal.reason, field=refusal.field) from None
    state.check_storage(user_id, sum(len(u.data) for u in uploads))
    subject = Subject(id="sub_" + secrets.token_hex(8), user_id=user_id, token=token.strip(),
                      class_noun=class_noun.strip(), kind=kind,
                      photos=[{"name": display_name(u.client_name), "file": n, "bytes": len(u.data)}
                              for u, n in zip(uploads, names)],
                      bytes=sum(len(u.data) for u in uploads))
    workspace = subject_workspace(state.root, user_id, subject.id)
    (workspace / "photos").mkdir(parents=True)
    try:
        for upload, name in zip(uploads, names):
            (workspace / "photos" / name).write_bytes(upload.data)
        params = subject_params(state.params, workspace, subject)
        try:
            validate.run(params, Workspace(workspace))
        except StageError:
            pass  # the report has every reason; answered below
        report = json.loads((workspace / "data/validated/report.json").read_text())
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    by_file = {p["file"]: p["name"] for p in subject.photos}
    reasons = [{"file": by_file.get(Path(r["file"]).name, "?"), "reason": hide(r["reason"], workspace)}
               for r in report["rejected"]]
    if report["status"] != "accepted":
        shutil.rmtree(workspace, ignore_errors=True)
        raise ApiError(422, "photos_rejected", f"{len(reasons)} of {len(uploads)} photos cannot be used",
                       field="photos", rejected=reasons,
                       accepted=[by_file.get(Path(f).name, "?") for f in report["accepted"]])
    with state.store.writing() as session:
        session.add(subject)
    return subject_json(subject, report)


def hide(reason: str, workspace: Path) -> str:
    """A stage's reason without the server's paths in it."""
    return reason.replace(str((workspace / "photos").absolute()) + "/", "").replace(str(workspace) + "/", "")


def subject_json(subject: Subject, report: dict | None = None) -> dict:
    out = {"id": subject.id, "token": subject.token, "class_noun": subject.class_noun, "kind": subject.kind,
           "created_at": subject.created_at.isoformat() if subject.created_at else None,
           "photos": [{"name": p["name"], "bytes": p["bytes"]} for p in subject.photos], "bytes": subject.bytes}
    if report is not None:
        by_file = {p["file"]: p["name"] for p in subject.photos}
        out["warnings"] = [{"file": by_file.get(Path(w["file"]).name, "?"), "reason": w["reason"]}
                           for w in report.get("warnings", [])]
    return out
