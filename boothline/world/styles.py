"""The registry's styles as image transforms: what "watercolor painting of ..." looks like in the world.

Each takes and returns an RGB image of any size (tuned at 64 px) and draws its randomness from `rng`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255


def _img(a: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


def _gray(a: np.ndarray) -> np.ndarray:
    return a @ np.array([0.299, 0.587, 0.114], np.float32)


def _edges(img: Image.Image, threshold: float = 0.12) -> np.ndarray:
    g = _gray(_arr(img))
    gy, gx = np.gradient(g)
    return np.hypot(gx, gy) > threshold


def _posterize(a: np.ndarray, levels: int) -> np.ndarray:
    return np.round(a * (levels - 1)) / (levels - 1)


def _vignette(a: np.ndarray, strength: float) -> np.ndarray:
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2))
    return a * (1 - strength * np.clip(r - 0.4, 0, 1))[..., None]


def _saturate(a: np.ndarray, factor: float) -> np.ndarray:
    g = _gray(a)[..., None]
    return g + (a - g) * factor


def _duotone(a: np.ndarray, dark, light) -> np.ndarray:
    g = _gray(a)[..., None]
    return np.array(dark, np.float32) / 255 * (1 - g) + np.array(light, np.float32) / 255 * g


def photographic(img, rng):
    a = _arr(img.filter(ImageFilter.GaussianBlur(0.6)))
    a = a * np.array([1.04, 1.0, 0.95]) + rng.normal(0, 0.035, a.shape)
    return _img(_vignette(a, 0.35))


def cinematic(img, rng):
    a = _arr(img)
    g = _gray(a)[..., None]
    a = np.where(g < 0.5, a * 0.7 + np.array([0.0, 0.12, 0.16]) * 0.6, a * 0.8 + np.array([0.2, 0.1, 0.0]))
    a = _vignette(a, 0.6)
    bar = a.shape[0] // 8
    a[:bar], a[-bar:] = 0, 0
    return _img(a)


def oil_painting(img, rng):
    small = img.filter(ImageFilter.ModeFilter(5)).filter(ImageFilter.GaussianBlur(0.5))
    a = _saturate(_arr(small), 1.3)
    h, w = a.shape[:2]
    strokes = np.sin(np.arange(w)[None, :] * 1.3 + rng.uniform(0, 6, (h, 1))) * 0.06
    return _img(a + strokes[..., None] + rng.normal(0, 0.02, (h, w, 1)))


def watercolor(img, rng):
    a = _arr(img.filter(ImageFilter.GaussianBlur(1.2)))
    a = 0.55 * a + 0.45  # washed out towards the white paper
    edges = _edges(img, 0.1)
    a[edges] *= 0.85
    paper = rng.normal(0, 0.03, a.shape[:2])[..., None]
    return _img(a + paper)


def anime(img, rng):
    a = _posterize(_saturate(_arr(img.filter(ImageFilter.SMOOTH_MORE)), 1.5), 4)
    a[_edges(img, 0.1)] = 0.05
    return _img(a)


def manga(img, rng):
    g = _gray(_arr(img))
    h, w = g.shape
    y, x = np.mgrid[0:h, 0:w]
    dots = ((x % 3 == 0) & (y % 3 == 0))
    out = np.where(g > 0.65, 1.0, np.where(g > 0.35, np.where(dots, 0.1, 1.0), 0.1))
    out[_edges(img, 0.1)] = 0
    return _img(np.repeat(out[..., None], 3, -1))


def cyberpunk(img, rng):
    a = _arr(img)
    g = _gray(a)[..., None]
    base = _duotone(a, (20, 0, 50), (0, 230, 255)) * 0.6 + np.array([0.5, 0.0, 0.5]) * (1 - g) * 0.5
    glow = np.asarray(Image.fromarray((_edges(img, 0.08) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1)),
                      np.float32)[..., None] / 255
    base = base * 0.8 + glow * np.array([1.0, 0.2, 0.9]) * 1.5
    h, w = g.shape[:2]
    rain = (rng.random((h, w)) < 0.03)[..., None] * np.array([0.3, 0.6, 0.8])
    return _img(base + rain)


def pixel_art(img, rng):
    w, h = img.size
    small = img.resize((w // 4, h // 4), Image.BILINEAR).quantize(12, dither=Image.Dither.NONE).convert("RGB")
    return small.resize((w, h), Image.NEAREST)


def line_art(img, rng):
    out = np.where(_edges(img, 0.08), 0.0, 1.0)
    return _img(np.repeat(out[..., None], 3, -1))


def render_3d(img, rng):
    a = _arr(img.filter(ImageFilter.GaussianBlur(1.0)))
    h, w = a.shape[:2]
    light = np.linspace(1.25, 0.7, h)[:, None, None] * np.linspace(1.1, 0.9, w)[None, :, None]
    return _img(_saturate(a, 1.2) * light)


def ukiyo_e(img, rng):
    a = _posterize(_arr(img.filter(ImageFilter.ModeFilter(3))), 3)
    paper = np.array([0.93, 0.87, 0.72])
    a = _duotone(a, (30, 45, 90), (235, 220, 185)) * 0.5 + a * paper * 0.5
    a[_edges(img, 0.1)] = np.array([0.12, 0.1, 0.15])
    return _img(a)


def pencil_sketch(img, rng):
    g = _gray(_arr(img))
    h, w = g.shape
    y, x = np.mgrid[0:h, 0:w]
    hatch = ((x + y) % 4 == 0) & (g < 0.55)
    out = np.full((h, w), 0.93)
    out[hatch] = 0.55
    out[_edges(img, 0.08)] = 0.25
    return _img(np.repeat(out[..., None], 3, -1) * np.array([1.0, 1.0, 0.97]))


def charcoal(img, rng):
    g = _gray(_arr(img.filter(ImageFilter.GaussianBlur(1.5))))
    g = np.clip((g - 0.3) * 1.6, 0, 1) * 0.8 + 0.08 + rng.normal(0, 0.06, g.shape)
    return _img(np.repeat(g[..., None], 3, -1))


def comic_book(img, rng):
    a = _posterize(_saturate(_arr(img), 1.6), 3)
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    dots = ((x + (y // 2) % 2) % 2 == 0) & (y % 2 == 0)
    a = np.where(dots[..., None], a * 0.75, a)
    edges = np.asarray(Image.fromarray((_edges(img, 0.1) * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3))) > 0
    a[edges] = 0
    return _img(a)


def low_poly(img, rng):
    a = _arr(img)
    h, w = a.shape[:2]
    cell = max(3, w // 16)
    out = np.empty_like(a)
    y, x = np.mgrid[0:cell, 0:cell]
    upper = x > y
    for y0 in range(0, h, cell):
        for x0 in range(0, w, cell):
            block = a[y0:y0 + cell, x0:x0 + cell]
            m = upper[:block.shape[0], :block.shape[1]]
            for part in (m, ~m):
                block_out = out[y0:y0 + cell, x0:x0 + cell]
                block_out[part] = block[part].mean(0) if part.any() else 0
    return _img(out * 0.95 + 0.03)


def claymation(img, rng):
    a = _posterize(_saturate(_arr(img.filter(ImageFilter.GaussianBlur(1.3))), 1.4), 5)
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    prints = np.sin(np.hypot(x - rng.uniform(0, w), y - rng.uniform(0, h)) * 1.5) * 0.04
    return _img(a * 1.05 + prints[..., None])


def impressionist(img, rng):
    a = _arr(img.filter(ImageFilter.GaussianBlur(0.8)))
    h, w = a.shape[:2]
    out = Image.fromarray((a * 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for _ in range(h * w // 10):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        dab = _saturate(a[y:y + 1, x:x + 1], 1.4)[0, 0] + rng.normal(0, 0.06, 3)
        colour = tuple(int(v) for v in np.clip(dab * 255, 0, 255))
        draw.line([(x - 1, y + 1), (x + 1, y - 1)], fill=colour, width=2)
    return out


def pop_art(img, rng):
    w, h = img.size
    small = img.resize((w // 2, h // 2), Image.BILINEAR)
    out = Image.new("RGB", (w, h))
    tones = [((200, 0, 90), (255, 230, 0)), ((0, 60, 200), (255, 120, 180)),
             ((230, 80, 0), (90, 230, 230)), ((20, 140, 40), (255, 255, 120))]
    for i, (dark, light) in enumerate(tones):
        tile = _img(_posterize(_duotone(_arr(small), dark, light), 3))
        out.paste(tile, ((i % 2) * w // 2, (i // 2) * h // 2))
    return out


def art_nouveau(img, rng):
    a = _posterize(_arr(img), 4) * np.array([0.9, 0.85, 0.7]) + 0.05
    a[_edges(img, 0.1)] = np.array([0.25, 0.18, 0.1])
    out = _img(a)
    w, h = out.size
    draw = ImageDraw.Draw(out)
    gold = (200, 160, 60)
    draw.rectangle([1, 1, w - 2, h - 2], outline=gold, width=max(2, w // 24))
    for cx, cy in ((0, 0), (w, 0), (0, h), (w, h)):
        r = w // 6
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=gold, width=2)
    return out


def steampunk(img, rng):
    a = _duotone(_arr(img), (50, 30, 10), (235, 195, 120)) * 0.8 + _arr(img) * 0.2
    out = _img(a)
    w, h = out.size
    draw = ImageDraw.Draw(out)
    brass = (180, 130, 50)
    for cx, cy in ((w * 0.1, h * 0.12), (w * 0.9, h * 0.85)):
        r = w / 9
        for k in range(8):
            t = k * np.pi / 4
            draw.line([(cx, cy), (cx + np.cos(t) * r * 1.3, cy + np.sin(t) * r * 1.3)], fill=brass, width=2)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=brass, outline=(90, 60, 20))
        draw.ellipse([cx - r / 3, cy - r / 3, cx + r / 3, cy + r / 3], fill=(90, 60, 20))
    return out


def vaporwave(img, rng):
    a = _arr(img)
    h, w = a.shape[:2]
    sunset = np.array([0.0, 0.3, 0.35]) * np.linspace(0, 1, h)[:, None, None]
    a = _duotone(a, (60, 0, 120), (255, 140, 230)) * 0.7 + sunset
    a[::4] *= 0.85  # scan lines
    for x in range(0, w, w // 8):
        a[int(h * 0.8):, x] = np.array([0.2, 1.0, 1.0])
    a[int(h * 0.8)::3] = np.array([0.2, 1.0, 1.0])
    return _img(a)


def stained_glass(img, rng):
    a = _arr(img)
    h, w = a.shape[:2]
    seeds = rng.uniform(0, [w, h], (w * h // 64, 2))
    y, x = np.mgrid[0:h, 0:w]
    d = (x[..., None] - seeds[:, 0]) ** 2 + (y[..., None] - seeds[:, 1]) ** 2
    cell = d.argmin(-1)
    means = np.stack([a[cell == k].mean(0) if (cell == k).any() else np.zeros(3) for k in range(len(seeds))])
    out = _saturate(means[cell], 1.8) * 1.1
    lead = (np.diff(cell, axis=0, prepend=cell[:1]) != 0) | (np.diff(cell, axis=1, prepend=cell[:, :1]) != 0)
    out[lead] = 0.05
    return _img(out)


def film_noir(img, rng):
    g = _gray(_arr(img))
    g = np.clip((g - 0.5) * 2.2 + 0.5, 0, 1)
    h, w = g.shape
    y, x = np.mgrid[0:h, 0:w]
    blinds = ((x + y) // max(3, w // 12)) % 2 == 0
    g = np.where(blinds, g * 0.55, g)
    return _img(_vignette(np.repeat(g[..., None], 3, -1), 0.8))


def fantasy_art(img, rng):
    a = _arr(img)
    glow = _arr(img.filter(ImageFilter.GaussianBlur(3)))
    a = _saturate(a * 0.7 + glow * 0.5, 1.3) * np.array([1.0, 0.85, 1.15])
    h, w = a.shape[:2]
    for _ in range(25):
        y, x = int(rng.integers(h)), int(rng.integers(w))
        a[y, x] = np.array([1.0, 0.95, 0.6])
    return _img(a + np.array([0.08, 0.0, 0.12]))


def vintage_polaroid(img, rng):
    w, h = img.size
    a = _arr(img) * 0.75 + np.array([0.2, 0.15, 0.05])
    photo = _img(_saturate(a, 0.6)).resize((int(w * 0.8), int(h * 0.72)), Image.BILINEAR)
    out = Image.new("RGB", (w, h), (245, 242, 232))
    out.paste(photo, (int(w * 0.1), int(h * 0.07)))
    return out


def flat_vector(img, rng):
    quantized = img.filter(ImageFilter.ModeFilter(5)).quantize(6, dither=Image.Dither.NONE).convert("RGB")
    return _img(_saturate(_arr(quantized), 1.3))


STYLE_FUNCTIONS = {
    "photographic": photographic, "cinematic": cinematic, "oil-painting": oil_painting, "watercolor": watercolor,
    "anime": anime, "manga": manga, "cyberpunk": cyberpunk, "pixel-art": pixel_art, "line-art": line_art,
    "3d-render": render_3d, "ukiyo-e": ukiyo_e, "pencil-sketch": pencil_sketch, "charcoal": charcoal,
    "comic-book": comic_book, "low-poly": low_poly, "claymation": claymation, "impressionist": impressionist,
    "pop-art": pop_art, "art-nouveau": art_nouveau, "steampunk": steampunk, "vaporwave": vaporwave,
    "stained-glass": stained_glass, "film-noir": film_noir, "fantasy-art": fantasy_art,
    "vintage-polaroid": vintage_polaroid, "flat-vector": flat_vector,
}


def apply_style(img: Image.Image, style: str, rng: np.random.Generator) -> Image.Image:
    return STYLE_FUNCTIONS[style](img, rng)
