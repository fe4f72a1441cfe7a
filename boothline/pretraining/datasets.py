"""Rendering the pretraining datasets: every item is a pure function of (seed, split, index), so the
result does not depend on how many worker processes render it.

- `scenes`: captioned scenes of pretraining designs (CLIP, VAE, UNet);
- `heldout`: captioned scenes of held-out designs (measuring CLIP on designs it never saw);
- `identity` / `identity-heldout`: several views of each design (training and measuring the identity encoder).
Each dataset is a directory with `images.npy` (N x 64 x 64 x 3, uint8) and `items.parquet` (one row per image).
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from boothline.world.captions import caption, registry_entries
from boothline.world.designs import Scene, pretraining_design, random_scene
from boothline.world.render import render

SIZE = 64
REGISTRY = Path("registry/styles.yaml")
SPLITS = {"scenes": 0, "heldout": 1, "identity": 2, "identity-heldout": 3}


def item_rng(seed: int, split: str, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], *index])


def captioned_scene(seed: int, split: str, index: int, templates) -> tuple[Scene, str]:
    rng = item_rng(seed, split, index)
    scene = random_scene(rng, pretraining_design(rng, held_out=split == "heldout"))
    return scene, caption(scene, rng, templates)


def identity_view(seed: int, split: str, design_index: int, view: int) -> Scene:
    design = pretraining_design(item_rng(seed, split, design_index), held_out=split == "identity-heldout")
    rng = item_rng(seed, split, design_index, view)
    return random_scene(rng, design, p_context=0.8, p_style=0.5, p_prop=0.1, p_accessory=0.2)


def scene_row(scene: Scene) -> dict:
    design = asdict(scene.design)
    row = {**design, "design": scene.design.key, **{k: v for k, v in asdict(scene).items() if k != "design"}}
    return row


def _render_chunk(job: tuple) -> tuple[np.ndarray, list[dict]]:
    kind, seed, split, indices, extra = job
    images, rows = [], []
    if kind == "captioned":
        templates = {name: entry["prompt"] for name, entry in registry_entries(extra).items()}
        for i in indices:
            scene, text = captioned_scene(seed, split, i, templates)
            images.append(np.asarray(render(scene, SIZE)))
            rows.append({"index": i, "caption": text, **scene_row(scene)})
    else:
        views = extra
        for i in indices:
            for v in range(views):
                scene = identity_view(seed, split, i, v)
                images.append(np.asarray(render(scene, SIZE)))
                rows.append({"index": i, "view": v, **scene_row(scene)})
    return np.stack(images), rows


def render_dataset(out_dir: Path, kind: str, seed: int, split: str, count: int, workers: int,
                   views: int = 1, registry: Path = REGISTRY, chunk: int = 500) -> Path:
    """Render `count` items (captioned scenes, or designs x `views`) into `out_dir`, written atomically;
    captions wrap styled scenes in the templates of the style registry `registry`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = str(registry) if kind == "captioned" else views
    jobs = [(kind, seed, split, range(start, min(count, start + chunk)), extra) for start in range(0, count, chunk)]
    total = count * (views if kind == "views" else 1)
    tmp = out_dir / "images.npy.tmp"
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, SIZE, SIZE, 3))
    rows: list[dict] = []
    with ProcessPoolExecutor(workers) as pool:
        for chunk_images, chunk_rows in pool.map(_render_chunk, jobs):
            images[len(rows):len(rows) + len(chunk_rows)] = chunk_images
            rows.extend(chunk_rows)
    images.flush()
    del images
    tmp.replace(out_dir / "images.npy")
    pd.DataFrame(rows).to_parquet(out_dir / "items.parquet", index=False)
    (out_dir / "info.json").write_text(json.dumps({"kind": kind, "seed": seed, "split": split, "count": count,
                                                   "views": views, "images": total}, indent=2) + "\n")
    return out_dir
