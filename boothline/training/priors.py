"""Class-prior images for prior preservation ("a photo of a toy"), cached and resumable.

Image i is rendered from seed `priors.seed + i`, and its file name carries a hash of everything that
shapes it (model, prompts, seed, steps, guidance, scheduler, size). So a rerun reuses every image that is
already there, a killed run (each PNG is written atomically) renders only what is missing, and changing
the model or prompt renders anew. Files the current params no longer produce are deleted.
A user may supply class images instead (`priors.class_dir`); they are checked like the subject photos and
topped up with generated ones when there are too few.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from boothline.errors import StageError
from boothline.io.files import FILE_WRITERS, remove_stale, sha256_file
from boothline.io.images import save_png
from boothline.params import Params
from boothline.photos.folder import check_folder
from boothline.pipelines import compiling
from boothline.pipelines.loading import (base_model_id, load_pipeline, pick_dtype, prepare_for_inference,
                                         render_numerics, stage_device)
from boothline.pipelines.sampling import Request, render

PRIORS_COLUMNS = ["file", "sha256", "seed", "prompt", "negative_prompt", "model_id", "scheduler", "steps", "guidance",
                  "width", "height", "source"]
log = logging.getLogger(__name__)


def planned_requests(params: Params, count: int) -> list[Request]:
    p, size = params.priors, params.train.resolution
    return [Request(params.class_prompt, p.seed + i, p.negative_prompt, p.steps, p.guidance, size, size)
            for i in range(count)]


def file_name(params: Params, index: int, req: Request) -> str:
    key = json.dumps([base_model_id(params.model), params.model.variant, *render_numerics(params.model),
                      params.model.scheduler, req.prompt, req.negative_prompt, req.seed, req.steps, req.guidance,
                      req.width, req.height])
    return f"prior-{index:05d}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.png"


def user_class_images(params: Params) -> pd.DataFrame:
    class_dir = params.priors.class_dir
    if class_dir is None:
        return pd.DataFrame(columns=["file", "sha256"])
    check = check_folder(class_dir, min_side=params.train.resolution, allow_upscale=params.subject.allow_upscale,
                         min_images=1, max_images=100_000)
    if check.rejected:
        raise StageError("\n".join(f"{file}: {reason}" for file, reason in check.rejected.items()))
    return check.manifest.head(params.priors.num_images)


def class_images(params: Params, directory: Path, manifest: Path) -> tuple[pd.DataFrame, dict]:
    """Render what is missing into `directory` (deleting what the params no longer produce, except the
    `manifest`); returns the manifest table (generated images, then supplied ones) and the counts."""
    user = user_class_images(params)  # checked before any model is loaded
    n_generated = max(0, params.priors.num_images - len(user))
    requests = planned_requests(params, n_generated)
    names = [file_name(params, i, r) for i, r in enumerate(requests)]

    directory.mkdir(parents=True, exist_ok=True)
    wanted = {directory / name for name in names} | {manifest}
    remove_stale(directory, keep=wanted.__contains__)
    missing = {i for i, name in enumerate(names) if not (directory / name).is_file()}
    # Fixed batches of the whole plan: a resumed run renders each image in the same batch shape as an
    # uninterrupted one (the shape changes the last bits), re-rendering the finished mates of a missing one.
    size = params.priors.batch_size
    batches = [range(start, min(start + size, n_generated)) for start in range(0, n_generated, size)]
    todo = [i for batch in batches if not missing.isdisjoint(batch) for i in batch]
    log.info("%d class images: %d supplied, %d cached, %d to render", params.priors.num_images, len(user),
             n_generated - len(missing), len(missing))

    if missing:
        device = stage_device(params.model)
        pipe = load_pipeline(params.model.base, model=params.model, device=device,
                             dtype=pick_dtype(params.model.dtype, device), scheduler=params.model.scheduler)
        prepare_for_inference(pipe, params.model, device)
        images = render(pipe, [requests[i] for i in todo], size)
        with ThreadPoolExecutor(FILE_WRITERS) as writers:  # PNGs encode while the next batch renders
            writes = [writers.submit(save_png, directory / names[i], image)
                      for i, (_, image) in tqdm(zip(todo, images), total=len(todo), desc="priors", unit="img")
                      if i in missing]
        for write in writes:
            write.result()
        if params.model.compile:
            compiling.save_cache("inference")

    rows = [{"file": str(directory / name), "sha256": sha256_file(directory / name), "seed": r.seed,
             "prompt": r.prompt, "negative_prompt": r.negative_prompt, "model_id": base_model_id(params.model),
             "scheduler": params.model.scheduler, "steps": r.steps, "guidance": r.guidance, "width": r.width,
             "height": r.height, "source": "generated"} for name, r in zip(names, requests)]
    rows += [{"file": row.file, "sha256": row.sha256, "seed": -1, "prompt": params.class_prompt, "negative_prompt": "",
              "model_id": "", "scheduler": "", "steps": 0, "guidance": 0.0, "width": row.width, "height": row.height,
              "source": "user"} for row in user.itertuples()]
    counts = {"images": len(rows), "rendered": len(missing), "reused": n_generated - len(missing), "user": len(user)}
    return pd.DataFrame(rows, columns=PRIORS_COLUMNS), counts
