"""Draw the demo subject: a small, distinctive robot toy, photographed five ways.

`python -m boothline.photos.demo [DIR]` writes the committed images in `data/subjects/demo/`. The toy
keeps its identity (teal body, orange visor, yellow antenna ball, heart badge) while the "photos" vary
background, scale, position and rotation, as a user's photos of one object would.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from boothline.paths import DEMO_SUBJECT_DIR

SIZE = 128
SHOTS = [  # background top, background bottom, scale, dx, dy, rotation
    ((210, 225, 240), (150, 120, 90), 1.00, 0, 4, 0),
    ((240, 230, 200), (90, 110, 70), 0.85, -14, 8, -8),
    ((200, 200, 210), (60, 60, 70), 1.10, 10, 0, 6),
    ((250, 215, 215), (170, 150, 130), 0.75, 18, 12, 12),
    ((180, 220, 200), (120, 90, 60), 0.95, -8, -2, -15),
]


def draw_toy(scale: float) -> Image.Image:
    s = int(96 * scale)
    toy = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(toy)
    u = s / 96
    teal, dark, orange, yellow = (20, 160, 150, 255), (15, 70, 80, 255), (250, 130, 30, 255), (250, 220, 40, 255)
    d.line([(48 * u, 18 * u), (48 * u, 6 * u)], fill=dark, width=max(1, int(3 * u)))
    d.ellipse([42 * u, 0, 54 * u, 12 * u], fill=yellow, outline=dark)
    d.rounded_rectangle([26 * u, 16 * u, 70 * u, 44 * u], radius=8 * u, fill=teal, outline=dark, width=2)
    d.rounded_rectangle([32 * u, 24 * u, 64 * u, 34 * u], radius=4 * u, fill=orange)
    d.rounded_rectangle([22 * u, 46 * u, 74 * u, 82 * u], radius=6 * u, fill=teal, outline=dark, width=2)
    d.polygon([(48 * u, 72 * u), (40 * u, 60 * u), (44 * u, 55 * u), (48 * u, 59 * u), (52 * u, 55 * u),
               (56 * u, 60 * u)], fill=(230, 40, 70, 255))
    d.rectangle([12 * u, 50 * u, 21 * u, 70 * u], fill=dark)
    d.rectangle([75 * u, 50 * u, 84 * u, 70 * u], fill=dark)
    d.rectangle([30 * u, 83 * u, 42 * u, 95 * u], fill=dark)
    d.rectangle([54 * u, 83 * u, 66 * u, 95 * u], fill=dark)
    return toy


def draw_shot(top, bottom, scale, dx, dy, rotation, seed) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (SIZE, SIZE))
    d = ImageDraw.Draw(img)
    horizon = SIZE * 2 // 3
    for y in range(SIZE):
        t = y / SIZE
        c = top if y < horizon else bottom
        d.line([(0, y), (SIZE, y)], fill=tuple(int(v * (0.9 + 0.1 * t)) for v in c))
    for _ in range(60):  # texture, so no two photos share pixels outside the toy
        x, y = rng.randrange(SIZE), rng.randrange(horizon, SIZE)
        d.point((x, y), fill=tuple(max(0, v - rng.randrange(30)) for v in bottom))
    toy = draw_toy(scale).rotate(rotation, resample=Image.BICUBIC, expand=True)
    shadow = Image.new("RGBA", toy.size, (0, 0, 0, 0))
    shadow.putalpha(toy.getchannel("A").point(lambda a: a // 3))
    x = (SIZE - toy.width) // 2 + dx
    y = (SIZE - toy.height) // 2 + dy
    img.paste(shadow.filter(ImageFilter.GaussianBlur(3)), (x + 4, y + 4), shadow.filter(ImageFilter.GaussianBlur(3)))
    img.paste(toy, (x, y), toy)
    return img


def main(out_dir: str | Path = DEMO_SUBJECT_DIR) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, shot in enumerate(SHOTS):
        draw_shot(*shot, seed=i).save(out / f"toy-{i + 1}.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
