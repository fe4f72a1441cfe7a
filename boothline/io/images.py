"""Reading user photos into clean RGB, and writing PNGs that carry their generation parameters.

PNGs get the AUTOMATIC1111 `parameters` text chunk (read by A1111, ComfyUI, InvokeAI, civitai and most
image browsers) and a `boothline` chunk with the full JSON record.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, PngImagePlugin

from boothline.io.files import atomic_write_bytes


def to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any mode (L, LA, P, RGBA, CMYK, I;16...) to RGB.

    Transparent areas are composited on white, which is what a viewer shows for them.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    with Image.open(path) as im:
        return to_rgb(im)


def a1111_parameters(prompt: str, negative_prompt: str, *, steps: int, sampler: str, cfg_scale: float,
                     seed: int, width: int, height: int, model_hash: str, model_name: str) -> str:
    """The `parameters` text exactly as AUTOMATIC1111 writes it."""
    cfg = f"{cfg_scale:g}"
    return (
        f"{prompt}\nNegative prompt: {negative_prompt}\n"
        f"Steps: {steps}, Sampler: {sampler}, CFG scale: {cfg}, Seed: {seed}, Size: {width}x{height}, "
        f"Model hash: {model_hash}, Model: {model_name}"
    )


def png_bytes(image: Image.Image, parameters: str | None = None, record: dict[str, Any] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    if record is not None:
        info.add_text("boothline", json.dumps(record, sort_keys=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(path: str | Path, image: Image.Image, parameters: str | None = None,
             record: dict[str, Any] | None = None) -> Path:
    """Write a PNG atomically (temp file + rename), with optional A1111 and boothline metadata."""
    return atomic_write_bytes(path, png_bytes(image, parameters, record))
