"""Drawing in a 128-unit coordinate system at any pixel size, with pattern fills and a cube mode."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

UNITS = 128


def shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, c * factor))) for c in colour)


def mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b))


def pattern_texture(size: int, pattern: str, main, part) -> Image.Image:
    """A size x size RGB texture: the main colour with the part colour in stripes, dots or checks."""
    y, x = np.mgrid[0:size, 0:size] * (UNITS / size)
    if pattern == "stripes":
        on = (y // 8) % 2 == 1
    elif pattern == "dots":
        on = ((x % 12) - 6) ** 2 + ((y % 12) - 6) ** 2 < 9
    elif pattern == "checks":
        on = ((x // 8) + (y // 8)) % 2 == 1
    else:
        on = np.zeros_like(x, dtype=bool)
    pixels = np.where(on[..., None], np.array(part, np.uint8), np.array(main, np.uint8))
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


class Canvas:
    """An RGBA (or RGB) image drawn in 128 units; `cube` turns every ellipse and rounded box square."""

    def __init__(self, size: int, mode: str = "RGBA", background=(0, 0, 0, 0), cube: bool = False):
        self.size = size
        self.k = size / UNITS
        self.image = Image.new(mode, (size, size), background)
        self.draw = ImageDraw.Draw(self.image)
        self.cube = cube

    def _box(self, box):
        x0, y0, x1, y1 = (v * self.k for v in box)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def _points(self, points):
        return [(x * self.k, y * self.k) for x, y in points]

    def _width(self, width: float) -> int:
        return max(1, round(width * self.k))

    def ellipse(self, box, fill, outline=None, width=1.5):
        if self.cube:
            return self.rect(box, fill, outline, width)
        self.draw.ellipse(self._box(box), fill=fill, outline=outline, width=self._width(width))

    def rect(self, box, fill, outline=None, width=1.5, radius=0):
        radius = 0 if self.cube else radius * self.k
        self.draw.rounded_rectangle(self._box(box), radius=radius, fill=fill, outline=outline,
                                    width=self._width(width))

    def poly(self, points, fill, outline=None, width=1.5):
        self.draw.polygon(self._points(points), fill=fill, outline=outline, width=self._width(width))

    def line(self, points, fill, width=1.5):
        self.draw.line(self._points(points), fill=fill, width=self._width(width), joint="curve")

    def arc(self, box, start, end, fill, width=1.5):
        self.draw.arc(self._box(box), start, end, fill=fill, width=self._width(width))

    def patterned(self, shape: str, box, main, part, pattern: str, outline=None, radius=0):
        """An ellipse or box filled with `pattern` in main and part colours, then outlined."""
        if pattern == "plain":
            getattr(self, shape)(box, fill=main, outline=outline, **({"radius": radius} if shape == "rect" else {}))
            return
        mask = Canvas(self.size, "L", 0, self.cube)
        getattr(mask, shape)(box, fill=255, **({"radius": radius} if shape == "rect" else {}))
        self.image.paste(pattern_texture(self.size, pattern, main, part), (0, 0), mask.image)
        getattr(self, shape)(box, fill=None, outline=outline, **({"radius": radius} if shape == "rect" else {}))
