"""Reproducing a logged image from its history row, bit for bit.

The row holds the exact prompt, negative prompt, seed, settings, model version, dtype, CPU thread count and
the batch the image was rendered in. Batch size and the number of CPU threads change the last bits of the
result, so the image is rendered again with the same thread count, in a batch of the same size at the same
position (the other places hold copies of it: a row's pixels depend on the batch's shape, not on its
neighbours), then compared with the logged pixel hash.
"""

from __future__ import annotations

import logging
from pathlib import Path

from boothline.errors import ModelError, StageError
from boothline.generation.history import query, read_history
from boothline.generation.model_uri import display_name, resolve_model
from boothline.generation.renderer import Renderer, cpu_threads
from boothline.generation.running import RECORD_KEYS, parameters_text
from boothline.io.image_formats import pixel_sha256, write_image
from boothline.params import Params
from boothline.paths import Workspace
from boothline.pipelines.loading import pick_device
from boothline.pipelines.sampling import Request

FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
log = logging.getLogger(__name__)


def find_row(image_id: str, history_dir: str | Path) -> dict:
    """The latest history row of an image id (or a unique prefix of one)."""
    rows = query(read_history(history_dir), image_id=image_id.strip().lower()) if image_id.strip() else None
    if rows is None or rows.empty:
        raise StageError(f"{image_id}: no image with this id in the history log {history_dir}")
    ids = rows.image_id.unique()
    if len(ids) > 1:
        raise StageError(f"{image_id}: ambiguous, matches {len(ids)} images ({', '.join(ids[:5])}...)")
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in rows.iloc[-1].items()}


def regenerate(image_id: str, params: Params, out: str | Path | None = None, history_dir: str | Path | None = None,
               workspace: Workspace = Workspace()) -> dict:
    """Render a logged image again; returns where it went and whether its pixels match the log."""
    row = find_row(image_id, history_dir or params.generate.history_dir or workspace.history_dir)
    out = Path(out) if out else workspace.regenerated_dir / f"{row['image_id']}{Path(row['file']).suffix}"
    if out.suffix.lower() not in FORMATS:
        raise StageError(f"{out}: unknown image format {out.suffix!r} (use one of {', '.join(FORMATS)})")
    made_on, here = row["device"].split(":")[0], pick_device(params.model.device).type
    if made_on != here:  # a CUDA generator draws other noise than a CPU one for the same seed
        raise StageError(f"{row['image_id']}: was made on {row['device']}, and model.device renders on {here} here; "
                         f"the same seed gives another picture on another kind of device")
    model = resolve_model(row["model_uri"], params, workspace)
    if model.version != row["model_version"]:
        raise ModelError(f"{row['image_id']}: was made with model version {row['model_version']}, but "
                         f"{row['model_uri']} is now {model.version}; the original model is needed to reproduce it")
    renderer = Renderer(model, params.model, dtype=row["dtype"])
    if renderer.device_label != row["device"]:
        log.warning("rendering on %s, the image was made on %s: pixels may differ slightly", renderer.device_label,
                    row["device"])
    request = Request(row["full_prompt"], row["seed"], row["negative_prompt"], row["steps"], row["guidance"],
                      row["width"], row["height"])
    with cpu_threads(row["cpu_threads"] if renderer.device.type == "cpu" else 0):
        picture = renderer.render(row["scheduler"], [request] * row["batch_size"])[row["batch_position"]]

    record = {k: row[k] for k in RECORD_KEYS}
    write_image(out, picture, FORMATS[out.suffix.lower()],
                parameters_text(record, display_name(row["model_uri"])), record)
    return {"image_id": row["image_id"], "file": str(out), "original": row["file"],
            "identical": pixel_sha256(picture) == row["pixel_sha256"]}
