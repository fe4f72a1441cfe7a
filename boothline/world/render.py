"""A Scene to pixels: the backdrop, the object posed on it, what lies in front, then the style."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from boothline.world.accessories import make_shiny, make_wet, wear
from boothline.world.canvas import Canvas
from boothline.world.contexts import BACKDROPS, REFLECTS, overlay
from boothline.world.designs import Scene
from boothline.world.objects import draw_object
from boothline.world.styles import apply_style

HEIGHT = {"toy": 0.5, "dog": 0.42, "cat": 0.48, "backpack": 0.46, "teapot": 0.38, "vase": 0.46}
SUPERSAMPLE = 2  # draw at twice the size, then downsample: smooth edges at 64 px


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a size x size RGB image; the same scene always gives the same pixels."""
    rng = np.random.default_rng(scene.seed)
    big = size * SUPERSAMPLE
    backdrop = Canvas(big, "RGB", (0, 0, 0))
    ground = BACKDROPS[scene.context](backdrop, rng)
    image = backdrop.image.convert("RGBA")

    layer = posed_object(scene, big, rng)
    box = layer.getchannel("A").getbbox()
    target_h = HEIGHT[scene.design.noun] * scene.scale * big
    if box:
        obj = layer.crop(box)
        factor = min(target_h / obj.height, 0.8 * big / obj.width)
        obj = obj.resize((max(1, round(obj.width * factor)), max(1, round(obj.height * factor))), Image.LANCZOS)
        x = round(big / 2 + scene.dx * big - obj.width / 2)
        y = round(ground / 128 * big + scene.dy * big - obj.height)
        shadow = Image.new("RGBA", obj.size, (0, 0, 0, 0))
        shadow.putalpha(obj.getchannel("A").point(lambda a: a // 3))
        shadow = shadow.filter(ImageFilter.GaussianBlur(big / 60))
        image.alpha_composite(_placed(shadow, image.size, x + big // 40, y + big // 60))
        if scene.context in REFLECTS:
            mirrored = ImageOps.flip(obj)
            mirrored.putalpha(mirrored.getchannel("A").point(lambda a: a * 2 // 5))
            image.alpha_composite(_placed(mirrored, image.size, x, y + obj.height))
        image.alpha_composite(_placed(obj, image.size, x, y))
    front = Canvas(big)
    overlay(scene.context, front, rng, ground)
    image.alpha_composite(front.image)
    small = image.convert("RGB").resize((size, size), Image.LANCZOS)
    return apply_style(small, scene.style, rng) if scene.style else small


def posed_object(scene: Scene, size: int, rng: np.random.Generator) -> Image.Image:
    canvas, anchors = draw_object(scene.design, size, cube=scene.prop == "cube")
    if scene.accessory and anchors.head:
        wear(canvas, scene.accessory, anchors)
    layer = canvas.image
    if scene.prop == "shiny":
        layer = make_shiny(layer, rng)
    elif scene.prop == "wet":
        layer = make_wet(layer, rng)
    if scene.flip:
        layer = ImageOps.mirror(layer)
    if scene.rotation:
        layer = layer.rotate(scene.rotation, resample=Image.BICUBIC, expand=True)
    return layer


def _placed(layer: Image.Image, size: tuple[int, int], x: int, y: int) -> Image.Image:
    """`layer` on a transparent canvas of `size` at (x, y), clipped at the edges."""
    out = Image.new("RGBA", size, (0, 0, 0, 0))
    out.paste(layer, (x, y), layer)
    return out
