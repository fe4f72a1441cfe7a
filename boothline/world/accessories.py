"""Accessories (the paper's ten) and the non-colour properties (shiny, wet), drawn onto an object layer."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageEnhance

from boothline.world.canvas import Canvas
from boothline.world.objects import Anchors

RED, WHITE, BLACK = (210, 30, 35), (245, 245, 245), (25, 25, 25)
PURPLE, PINK, YELLOW, GOLD = (120, 40, 170), (250, 120, 190), (245, 215, 30), (220, 180, 40)
NAVY, TAN = (30, 40, 110), (205, 170, 90)


def _hat_band(head):
    x0, y0, x1, _ = head
    return x0, y0, x1, (x0 + x1) / 2


def wear(c: Canvas, accessory: str, anchors: Anchors) -> None:
    head, torso = anchors.head, anchors.torso
    x0, y0, x1, cx = _hat_band(head)
    w = x1 - x0
    tx0, ty0, tx1, ty1 = torso
    if accessory == "red-hat":
        c.ellipse((cx - w * 0.38, y0 - w * 0.35, cx + w * 0.38, y0 + w * 0.2), RED)
        c.rect((x0 - 4, y0 - 2, x1 + 4, y0 + 4), RED)
    elif accessory == "santa-hat":
        c.poly([(x0 + 2, y0 + 2), (x1 - 2, y0 + 2), (x1 + w * 0.2, y0 - w * 0.5)], RED)
        c.ellipse((x1 + w * 0.1, y0 - w * 0.6, x1 + w * 0.3, y0 - w * 0.4), WHITE)
        c.rect((x0 - 2, y0 - 2, x1 + 2, y0 + 6), WHITE, radius=3)
    elif accessory == "rainbow-scarf":
        colours = [(225, 40, 40), (245, 140, 30), (245, 220, 40), (50, 170, 60), (40, 90, 220), (130, 50, 180)]
        for i, colour in enumerate(colours):
            c.rect((tx0 + 2, ty0 - 4 + i * 2.2, tx1 - 2, ty0 - 1.8 + i * 2.2), colour)
        for i, colour in enumerate(colours):
            c.rect((tx0 + 8 + i * 2.2, ty0, tx0 + 10.2 + i * 2.2, ty0 + 22), colour)
    elif accessory == "top-hat":
        c.rect((cx - w * 0.28, y0 - w * 0.6, cx + w * 0.28, y0), BLACK)
        c.rect((x0 - 4, y0 - 3, x1 + 4, y0 + 2), BLACK)
        cy = (head[1] + head[3]) / 2
        c.ellipse((cx + w * 0.05, cy - 7, cx + w * 0.3, cy + 7), None, GOLD, 2)
        c.line([(cx + w * 0.3, cy + 2), (cx + w * 0.36, cy + 16)], GOLD, 1)
    elif accessory == "chef":
        for dx in (-0.25, 0, 0.25):
            x = cx + dx * w
            c.ellipse((x - w * 0.22, y0 - w * 0.55, x + w * 0.22, y0 - w * 0.1), WHITE, (190, 190, 190))
        c.rect((cx - w * 0.35, y0 - w * 0.2, cx + w * 0.35, y0 + 3), WHITE, (190, 190, 190))
        c.rect((tx0 + (tx1 - tx0) * 0.2, ty0 + 2, tx1 - (tx1 - tx0) * 0.2, ty1), WHITE, (190, 190, 190))
    elif accessory == "firefighter":
        c.ellipse((x0 - 2, y0 - w * 0.35, x1 + 2, y0 + w * 0.25), RED)
        c.rect((x0 - 8, y0 + 1, x1 + 8, y0 + 6), RED)
        c.rect((tx0, ty0, tx1, ty1), TAN)
        for y in (ty0 + (ty1 - ty0) * 0.35, ty0 + (ty1 - ty0) * 0.7):
            c.rect((tx0, y, tx1, y + 3), YELLOW)
    elif accessory == "police":
        c.rect((x0, y0 - w * 0.25, x1, y0 + 2), NAVY, radius=3)
        c.rect((cx - 2, y0 - w * 0.2, cx + 4, y0 - 4), GOLD)
        c.rect((cx, y0, x1 + 8, y0 + 4), BLACK)
        c.rect((tx0, ty0, tx1, ty1), NAVY)
        c.poly([(tx0 + 10, ty0 + 6), (tx0 + 16, ty0 + 6), (tx0 + 13, ty0 + 13)], GOLD)
    elif accessory == "pink-glasses":
        cy = (head[1] + head[3]) / 2 - 2
        r = w * 0.14
        for ex in (cx - w * 0.2, cx + w * 0.2):
            c.ellipse((ex - r, cy - r, ex + r, cy + r), (255, 190, 225), PINK, 2.5)
        c.line([(cx - w * 0.2 + r, cy), (cx + w * 0.2 - r, cy)], PINK, 2)
    elif accessory == "yellow-shirt":
        c.rect((tx0, ty0, tx1, ty0 + (ty1 - ty0) * 0.75), YELLOW, (190, 160, 20))
    elif accessory == "wizard":
        c.rect((tx0 - 2, ty0, tx1 + 2, ty1), PURPLE)
        c.poly([(x0 - 6, y0 + 4), (x1 + 6, y0 + 4), (cx + w * 0.1, y0 - w * 0.9)], PURPLE)
        for sx, sy in ((cx - w * 0.1, y0 - w * 0.2), (cx + w * 0.12, y0 - w * 0.45), (tx0 + 8, ty0 + 10)):
            c.ellipse((sx - 2.5, sy - 2.5, sx + 2.5, sy + 2.5), YELLOW)


def make_shiny(layer: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Glossy: more contrast and saturation, and white highlights where the object is."""
    alpha = layer.getchannel("A")
    rgb = ImageEnhance.Contrast(ImageEnhance.Color(layer.convert("RGB")).enhance(1.4)).enhance(1.3)
    out = Image.merge("RGBA", (*rgb.split(), alpha))
    box = alpha.getbbox()
    if box:
        c = Canvas(layer.width)
        k = layer.width / 128
        x0, y0, x1, y1 = (v / k for v in box)
        for _ in range(4):
            x, y = rng.uniform(x0 + 6, x1 - 6), rng.uniform(y0 + 6, y1 - 6)
            c.ellipse((x - 4, y - 2.5, x + 4, y + 2.5), (255, 255, 255, 230))
        c.image.putalpha(ImageChops.multiply(c.image.getchannel("A"), alpha))
        out.alpha_composite(c.image)
    return out


def make_wet(layer: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Wet: darker, with drops on it and drips running down."""
    alpha = layer.getchannel("A")
    rgb = ImageEnhance.Brightness(layer.convert("RGB")).enhance(0.75)
    out = Image.merge("RGBA", (*rgb.split(), alpha))
    box = alpha.getbbox()
    if box:
        c = Canvas(layer.width)
        k = layer.width / 128
        x0, y0, x1, y1 = (v / k for v in box)
        for _ in range(14):
            x, y = rng.uniform(x0 + 3, x1 - 3), rng.uniform(y0 + 3, y1 - 3)
            c.ellipse((x - 1.8, y - 2.4, x + 1.8, y + 2.4), (200, 225, 255, 235))
            if rng.random() < 0.3:
                c.line([(x, y), (x, y + 8)], (190, 215, 250, 200), 1)
        c.image.putalpha(ImageChops.multiply(c.image.getchannel("A"), alpha))
        out.alpha_composite(c.image)
    return out
