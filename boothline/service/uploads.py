"""Checking uploaded photos before any decoding work, and storing them under names the service chooses.

What a client says a file is called never becomes a path: it is kept only as text (shown back in reasons),
and the file is stored as `photo-<nn><ext>`, the extension taken from what the bytes are. Size limits are
checked on the bytes; the pixel count is read from the image header (PIL reads no pixel data to open a
file), so a decompression bomb is refused without being decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from boothline.params import Uploads

FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


@dataclass(frozen=True)
class Upload:
    client_name: str  # as sent, for messages only
    data: bytes


@dataclass(frozen=True)
class Refusal(Exception):
    status: int  # 413 too large, 422 unusable
    field: str
    reason: str


def display_name(name: str | None) -> str:
    """The client's file name made safe to show: no directories, no control characters, at most 100."""
    base = (name or "").replace("\\", "/").split("/")[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in "\x00")
    return cleaned[:100] or "unnamed"


def check_uploads(files: list[Upload], limits: Uploads) -> None:
    """Raise a Refusal for the first limit a set of uploads breaks (count, bytes per file, total bytes)."""
    if len(files) > limits.max_files:
        raise Refusal(413, "photos", f"{len(files)} files; at most {limits.max_files} per subject")
    total = 0
    for upload in files:
        size = len(upload.data)
        total += size
        if size > limits.max_file_mb * 1e6:
            raise Refusal(413, upload.client_name, f"{size / 1e6:.1f} MB; at most {limits.max_file_mb:g} MB per file")
    if total > limits.max_total_mb * 1e6:
        raise Refusal(413, "photos", f"{total / 1e6:.1f} MB in all; at most {limits.max_total_mb:g} MB")


def stored_name(index: int, upload: Upload, limits: Uploads) -> str | None:
    """`photo-<nn><ext>` for an image whose header is readable and small enough; None if it is not an image
    (the validate stage then gives its own reason for it). Raises a Refusal for too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(upload.data)) as image:  # the header only
                width, height = image.size
                kind = image.format
    except Image.DecompressionBombWarning:
        raise Refusal(413, upload.client_name, f"more than {limits.max_pixels} pixels") from None
    except Image.DecompressionBombError:
        raise Refusal(413, upload.client_name, f"more than {limits.max_pixels} pixels") from None
    except Exception:  # noqa: BLE001 - not an image PIL knows: validate names the problem
        return f"photo-{index:02d}.bin"
    if width * height > limits.max_pixels:
        raise Refusal(413, upload.client_name, f"{width}x{height} = {width * height} pixels; at most "
                                               f"{limits.max_pixels}")
    return f"photo-{index:02d}{FORMATS.get(kind, '.bin')}"
