"""Reading a manifest back (validate's subject images, priors' class images): every file checked against the
sha256 the manifest recorded, so training and evaluation never use photos that changed since validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from boothline.errors import StageError
from boothline.io.files import sha256_file
from boothline.io.images import load_rgb


@dataclass(frozen=True)
class ImageSet:
    images: list[Image.Image]
    sha256: list[str]


def read_manifest(manifest: Path, producer: str) -> ImageSet:
    """The images a manifest (validate's or priors') lists, checked against the hashes it recorded; `producer`
    is the stage that writes it, named in the errors."""
    if not manifest.is_file():
        raise StageError(f"{manifest}: not found; run `python -m stages.{producer}` first (or `dvc repro`)")
    table = pd.read_parquet(manifest)
    if table.empty:
        raise StageError(f"{manifest}: lists no images")
    problems = []
    for file, digest in zip(table["file"], table["sha256"]):
        if not Path(file).is_file():
            problems.append(f"{file}: listed in {manifest} but missing")
        elif sha256_file(file) != digest:
            problems.append(f"{file}: changed since {manifest} was written; rerun `python -m stages.{producer}`")
    if problems:
        raise StageError("\n".join(problems))
    return ImageSet([load_rgb(file) for file in table["file"]], list(table["sha256"]))
