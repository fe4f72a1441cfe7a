"""Generated image files in PNG, JPEG or WebP, each carrying its generation parameters, written atomically.

PNG: the AUTOMATIC1111 `parameters` text chunk and a `boothline` JSON chunk (boothline.io.images.png_bytes).
JPEG/WebP: the same `parameters` text in EXIF UserComment (UNICODE-prefixed UTF-16, as A1111 writes it)
and the JSON record in EXIF ImageDescription. `read_record` gets the JSON record back from any of them.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from boothline.io.files import atomic_write_bytes
from boothline.io.images import png_bytes

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
USER_COMMENT_UNICODE = b"UNICODE\x00"
LOSSY_QUALITY = 95


def pixel_sha256(image: Image.Image) -> str:
    """Hash of the RGB pixels (and size) alone, independent of file format and metadata."""
    rgb = np.asarray(image.convert("RGB"))
    return hashlib.sha256(f"{rgb.shape}".encode() + rgb.tobytes()).hexdigest()


def _exif_bytes_image(image: Image.Image, fmt: str, parameters: str, record: dict[str, Any]) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = json.dumps(record, sort_keys=True)  # ensure_ascii: EXIF ASCII type
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = USER_COMMENT_UNICODE + parameters.encode("utf-16-be")
    buf = io.BytesIO()
    image.save(buf, format=fmt.upper(), exif=exif, quality=LOSSY_QUALITY)
    return buf.getvalue()


def image_bytes(image: Image.Image, fmt: str, parameters: str, record: dict[str, Any]) -> bytes:
    if fmt == "png":
        return png_bytes(image, parameters, record)
    return _exif_bytes_image(image, fmt, parameters, record)


def write_image(path: str | Path, image: Image.Image, fmt: str, parameters: str, record: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename): a kill leaves the whole file or none."""
    return atomic_write_bytes(path, image_bytes(image, fmt, parameters, record))


def read_metadata(path: str | Path) -> tuple[str | None, dict[str, Any] | None]:
    """(A1111 parameters text, boothline record) of an image file; None for what it lacks."""
    with Image.open(path) as im:
        if im.format == "PNG":
            text, record = im.info.get("parameters"), im.info.get("boothline")
        else:
            exif = im.getexif()
            record = exif.get(ExifTags.Base.ImageDescription)
            comment = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
            text = comment[len(USER_COMMENT_UNICODE):].decode("utf-16-be") \
                if isinstance(comment, bytes) and comment.startswith(USER_COMMENT_UNICODE) else None
    try:
        return text, json.loads(record) if record else None
    except ValueError:
        return text, None


def read_record(path: str | Path) -> dict[str, Any] | None:
    return read_metadata(path)[1]
