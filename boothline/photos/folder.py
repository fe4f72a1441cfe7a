"""Checking a folder of photos: one manifest row per usable image, one reason per rejected file.

Every file is inspected before anything is rejected, so the user sees all problems at once. Per-file
facts come from Pillow; the rules on them (format, size, dimensions) are a pandera schema validated
lazily, and each failure case is mapped back to the file it came from.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from PIL import Image, ImageOps, UnidentifiedImageError

from boothline.io.files import sha256_file

# MPO is how Pillow names a JPEG with extra frames (many cameras embed a preview, iPhones a gain map).
SUPPORTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF")
# Pillow's own bomb guard warns at 89 MP; photos for 512-1024 px training never need more than this.
MAX_PIXELS = 64_000_000
IGNORED_NAMES = {"Thumbs.db", "desktop.ini"}


class Manifest(pa.DataFrameModel):
    """One row per accepted image."""

    file: Series[str]
    sha256: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$", unique=True)
    format: Series[str] = pa.Field(isin=list(SUPPORTED_FORMATS))
    mode: Series[str]
    width: Series[int] = pa.Field(ge=1)
    height: Series[int] = pa.Field(ge=1)
    bytes: Series[int] = pa.Field(ge=1)

    class Config:
        strict = True
        coerce = True


def manifest_schema(min_side: int | None) -> pa.DataFrameSchema:
    """The manifest schema, plus the short-side rule when images may not be upscaled."""
    schema = copy.deepcopy(Manifest.to_schema())  # to_schema() is cached: never mutate it
    if min_side:
        schema.checks = [pa.Check(lambda df: df[["width", "height"]].min(axis=1) >= min_side, name="short_side")]
    return schema


@dataclass
class FolderCheck:
    manifest: pd.DataFrame
    rejected: dict[str, str] = field(default_factory=dict)  # file -> reason
    warnings: dict[str, str] = field(default_factory=dict)

    def report(self) -> dict:
        return {
            "status": "rejected" if self.rejected else "accepted",
            "accepted": self.manifest["file"].tolist(),
            "rejected": [{"file": f, "reason": r} for f, r in self.rejected.items()],
            "warnings": [{"file": f, "reason": r} for f, r in self.warnings.items()],
        }


def inspect_file(path: Path, root: Path) -> dict | str:
    """Manifest facts for one image file, or the reason it cannot be used."""
    try:
        target = path.resolve(strict=path.is_symlink())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return "broken symlink (its target is missing or loops back)"
    if root.resolve() not in target.parents:
        return f"resolves outside {root} (symlink to {target})"
    if not path.is_file():
        return "not a regular file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, mode, (w, h) = im.format, im.mode, im.size
                if w * h > MAX_PIXELS:
                    return f"decompression bomb guard: {w}x{h} is {w * h / 1e6:.0f} MP, over {MAX_PIXELS / 1e6:.0f} MP"
                if fmt not in SUPPORTED_FORMATS:
                    return f"unsupported format {fmt} (supported: {', '.join(SUPPORTED_FORMATS)})"
                if mode == "F":  # float pixels have no agreed range: converting them to RGB turns most images black
                    return "32-bit float pixels (mode F) are not supported; save it with 8 or 16 bits per channel"
                im.load()  # decodes every byte: truncated or corrupt data fails here
                try:
                    oriented = ImageOps.exif_transpose(im)
                except Exception as err:  # Pillow raises TypeError and others on malformed EXIF tags
                    return f"unreadable EXIF metadata ({type(err).__name__}: {err}); re-save the photo without it"
                w, h = oriented.size
    except UnidentifiedImageError:
        return "not an image, or corrupt beyond recognition"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return f"decompression bomb guard: {err}"
    except (OSError, SyntaxError, ValueError) as err:
        return f"corrupt or truncated image ({err})"
    return {"file": str(path), "sha256": sha256_file(path), "format": fmt, "mode": mode, "width": w,
            "height": h, "bytes": path.stat().st_size}


def check_folder(root: Path, *, min_side: int, allow_upscale: bool, min_images: int, max_images: int) -> FolderCheck:
    """Inspect every file under `root` (hidden files and folders skipped) and apply the manifest rules to all
    of them."""
    root = Path(root)
    if not root.is_dir():
        return FolderCheck(pd.DataFrame(columns=list(Manifest.to_schema().columns)), {str(root): "no such directory"})
    files = sorted(p for p in root.rglob("*") if p.name not in IGNORED_NAMES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)
                   and not (p.is_dir() and not p.is_symlink()))
    rows, rejected = [], {}
    for path in files:
        facts = inspect_file(path, root)
        if isinstance(facts, str):
            rejected[str(path)] = facts
        else:
            rows.append(facts)
    table = pd.DataFrame(rows, columns=list(Manifest.to_schema().columns))

    first_of: dict[str, str] = {}
    duplicates = []
    for i, row in table.iterrows():
        if row.sha256 in first_of:
            rejected[row.file] = f"exact duplicate of {first_of[row.sha256]}"
            duplicates.append(i)
        else:
            first_of[row.sha256] = row.file
    table = table.drop(index=duplicates).reset_index(drop=True)

    check = FolderCheck(table, rejected)
    if allow_upscale:
        for row in table.itertuples():
            if min(row.width, row.height) < min_side:
                check.warnings[row.file] = f"{row.width}x{row.height} is smaller than {min_side} px; it will be upscaled"
    try:
        check.manifest = manifest_schema(None if allow_upscale else min_side).validate(table, lazy=True)
    except pa.errors.SchemaErrors as err:
        bad_rows = sorted({int(i) for i in err.failure_cases["index"].dropna()})
        for case in err.failure_cases.dropna(subset=["index"]).itertuples():
            row = table.loc[int(case.index)]
            if case.check == "short_side":
                reason = (f"{row.width}x{row.height} is smaller than {min_side} px on the short side "
                          "(train.resolution); set subject.allow_upscale: true to accept it")
            else:
                reason = f"{case.column} = {case.failure_case!r} fails {case.check}"
            rejected.setdefault(row.file, reason)
        check.manifest = table.drop(index=bad_rows).reset_index(drop=True)

    usable = len(check.manifest)
    if usable < min_images:
        rejected[str(root)] = f"only {usable} usable images; at least {min_images} are needed"
    if usable > max_images:
        rejected[str(root)] = f"{usable} images, more than the allowed {max_images} (subject.max_images)"
    check.manifest = Manifest.validate(check.manifest) if usable else check.manifest
    return check
