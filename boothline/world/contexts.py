"""Backdrops for every context, drawn on an RGB canvas in 128 units.

Each backdrop returns the height (in units) the object stands on; `overlay` draws what goes in front of the
object (snow flakes, water, flowers) and `reflects` names the contexts that mirror it.
"""

from __future__ import annotations

import numpy as np

from boothline.world.canvas import Canvas, mix, shade

SKY = (150, 200, 240)
GRASS = (70, 150, 60)


def _gradient(c: Canvas, top, bottom, y0=0, y1=128):
    for y in range(int(y0), int(y1)):
        c.rect((0, y, 128, y + 1), mix(top, bottom, (y - y0) / max(1, y1 - y0)))


def plain(c, rng):
    wall = tuple(int(v) for v in rng.integers(170, 245, 3))
    _gradient(c, wall, shade(wall, 0.9), 0, 96)
    _gradient(c, shade(wall, 0.8), shade(wall, 0.7), 96, 128)
    return 108


def jungle(c, rng):
    _gradient(c, (30, 90, 40), (20, 60, 25))
    for _ in range(40):
        x, y = rng.uniform(0, 128, 2)
        g = (int(rng.integers(20, 60)), int(rng.integers(110, 190)), int(rng.integers(20, 70)))
        c.ellipse((x - 10, y - 4, x + 10, y + 4), g)
    for x in rng.uniform(0, 128, 5):
        c.line([(x, 0), (x + rng.uniform(-10, 10), 70)], (60, 110, 30), 2)
    c.rect((0, 104, 128, 128), (60, 45, 25))
    return 110


def snow(c, rng):
    _gradient(c, (195, 210, 225), (225, 232, 240), 0, 80)
    _gradient(c, (245, 248, 252), (215, 225, 240), 80, 128)
    for x in rng.uniform(0, 128, 6):
        c.poly([(x - 14, 80), (x, 56), (x + 14, 80)], (235, 240, 248))
    return 108


def beach(c, rng):
    _gradient(c, (120, 185, 240), (190, 220, 245), 0, 52)
    c.rect((0, 52, 128, 74), (40, 120, 200))
    for y in (58, 66):
        for x in range(0, 128, 16):
            c.arc((x, y - 3, x + 16, y + 3), 180, 360, (230, 240, 250), 1.5)
    _gradient(c, (235, 210, 150), (215, 185, 120), 74, 128)
    c.ellipse((92, 8, 112, 28), (255, 230, 90))
    return 110


def cobblestone(c, rng):
    c.rect((0, 0, 128, 64), (150, 115, 90))
    c.rect((0, 64, 128, 128), (70, 70, 75))
    for row, y in enumerate(range(64, 128, 9)):
        for x in range(-8 + (row % 2) * 6, 128, 13):
            g = int(rng.integers(110, 170))
            c.rect((x + 1, y + 1, x + 12, y + 8), (g, g, g - 5), radius=3)
    return 110


def pink_fabric(c, rng):
    c.rect((0, 0, 128, 128), (240, 150, 185))
    for i in range(10):
        y0 = i * 14 + rng.uniform(-3, 3)
        pts = [(x, y0 + 4 * np.sin(x / 12 + i)) for x in range(0, 132, 4)]
        c.line(pts, (205, 105, 145), 2)
    return 108


def wooden_floor(c, rng):
    c.rect((0, 0, 128, 70), (225, 210, 180))
    for i, y in enumerate(range(70, 128, 10)):
        c.rect((0, y, 128, y + 10), shade((160, 105, 60), 0.85 + 0.1 * (i % 2)))
        c.line([(0, y), (128, y)], (100, 60, 30), 1)
        for x in rng.uniform(0, 128, 2):
            c.line([(x, y), (x, y + 10)], (100, 60, 30), 1)
    return 110


def wooden_table(c, rng):
    c.rect((0, 0, 128, 128), (215, 215, 205))
    c.rect((0, 84, 128, 114), (150, 95, 50))
    for y in (90, 98, 106):
        c.line([(0, y + rng.uniform(-1, 1)), (128, y)], (120, 75, 40), 1)
    c.rect((0, 114, 128, 120), (110, 65, 30))
    c.rect((12, 120, 22, 128), (110, 65, 30))
    c.rect((106, 120, 116, 128), (110, 65, 30))
    return 104


def city(c, rng):
    _gradient(c, (150, 180, 220), (200, 210, 230), 0, 90)
    x = 0
    while x < 128:
        w, h = rng.uniform(12, 24), rng.uniform(30, 75)
        g = int(rng.integers(70, 130))
        c.rect((x, 90 - h, x + w, 90), (g, g, g + 15))
        for wy in np.arange(94 - h, 86, 7):
            for wx in np.arange(x + 3, x + w - 3, 6):
                c.rect((wx, wy, wx + 3, wy + 3), (240, 220, 120))
        x += w + 1
    c.rect((0, 90, 128, 128), (95, 95, 100))
    return 112


def mountain(c, rng):
    _gradient(c, (130, 180, 235), (200, 225, 245), 0, 90)
    for x, h in ((30, 60), (80, 75), (120, 50)):
        c.poly([(x - 45, 90), (x, 90 - h), (x + 45, 90)], (110, 105, 115))
        c.poly([(x - 12, 90 - h + 16), (x, 90 - h), (x + 12, 90 - h + 16)], (245, 245, 250))
    c.rect((0, 90, 128, 128), GRASS)
    return 112


def blue_house(c, rng):
    _gradient(c, SKY, (205, 225, 245), 0, 90)
    c.rect((20, 40, 108, 90), (50, 90, 200))
    c.poly([(12, 42), (64, 10), (116, 42)], (170, 50, 40))
    for x in (30, 84):
        c.rect((x, 52, x + 14, 64), (230, 235, 240))
    c.rect((57, 62, 71, 90), (120, 70, 40))
    c.rect((0, 90, 128, 128), GRASS)
    return 114


def purple_rug(c, rng):
    _gradient(c, (110, 160, 110), (60, 110, 60), 0, 90)
    for x in rng.uniform(0, 128, 6):
        c.rect((x - 3, 30, x + 3, 90), (90, 60, 35))
        c.ellipse((x - 16, 6, x + 16, 44), (40, int(rng.integers(100, 150)), 45))
    c.rect((0, 86, 128, 128), (80, 110, 50))
    c.rect((8, 94, 120, 122), (120, 50, 160))
    c.rect((14, 99, 114, 117), None, (170, 110, 210), 2)
    return 112


def wheat_field(c, rng):
    _gradient(c, SKY, (215, 230, 245), 0, 60)
    c.rect((0, 60, 128, 128), (215, 175, 70))
    for _ in range(70):
        x, y = rng.uniform(0, 128), rng.uniform(60, 128)
        c.line([(x, y), (x + rng.uniform(-2, 2), y - 8)], (175, 130, 40), 1.5)
        c.ellipse((x - 1.5, y - 11, x + 1.5, y - 6), (240, 205, 100))
    return 114


def autumn_tree(c, rng):
    _gradient(c, (160, 200, 235), (220, 225, 230), 0, 90)
    c.rect((86, 30, 98, 92), (100, 60, 30))
    for _ in range(30):
        x, y = rng.uniform(60, 126), rng.uniform(4, 50)
        c.ellipse((x - 9, y - 8, x + 9, y + 8), (int(rng.integers(200, 250)), int(rng.integers(70, 150)), 20))
    c.rect((0, 90, 128, 128), (170, 110, 50))
    for _ in range(25):
        x, y = rng.uniform(0, 128, 2)
        c.ellipse((x - 2, y - 1.5, x + 2, y + 1.5), (230, int(rng.integers(80, 160)), 20))
    return 114


def eiffel_tower(c, rng):
    _gradient(c, (170, 200, 235), (235, 215, 200), 0, 96)
    col = (85, 75, 70)
    c.poly([(70, 96), (88, 8), (106, 96), (100, 96), (88, 30), (76, 96)], col)
    for y, half in ((40, 8), (62, 12), (80, 15)):
        c.rect((88 - half, y, 88 + half, y + 3), col)
    c.arc((78, 84, 98, 104), 180, 360, col, 2)
    c.rect((0, 96, 128, 128), (120, 150, 90))
    return 114


def water(c, rng):
    _gradient(c, SKY, (190, 215, 240), 0, 40)
    _gradient(c, (50, 120, 190), (20, 70, 140), 40, 128)
    for y in range(46, 128, 9):
        for x in np.arange(rng.uniform(-16, 0), 128, 16):
            c.arc((x, y - 3, x + 16, y + 3), 180, 360, (130, 180, 225), 1.5)
    return 100


def milk(c, rng):
    _gradient(c, (225, 225, 215), (250, 248, 240), 0, 40)
    c.rect((0, 40, 128, 128), (250, 249, 243))
    for y in range(46, 128, 9):
        for x in np.arange(rng.uniform(-16, 0), 128, 16):
            c.arc((x, y - 3, x + 16, y + 3), 180, 360, (205, 205, 200), 1.5)
    return 100


def sunflower(c, x, y, r):
    for k in range(8):
        a = k * np.pi / 4
        c.ellipse((x + r * np.cos(a) - r * 0.5, y + r * np.sin(a) - r * 0.5,
                   x + r * np.cos(a) + r * 0.5, y + r * np.sin(a) + r * 0.5), (250, 205, 30))
    c.ellipse((x - r * 0.6, y - r * 0.6, x + r * 0.6, y + r * 0.6), (110, 70, 30))


def sunflowers(c, rng):
    _gradient(c, SKY, (200, 225, 245), 0, 70)
    c.rect((0, 70, 128, 128), (80, 170, 60))
    for x in rng.uniform(0, 128, 5):
        c.line([(x, 70), (x, 50)], (60, 120, 40), 2)
        sunflower(c, x, 46, 5)
    return 112


def mirror(c, rng):
    _gradient(c, (120, 125, 140), (160, 165, 175), 0, 90)
    _gradient(c, (200, 210, 220), (170, 180, 195), 90, 128)
    c.line([(0, 90), (128, 90)], (235, 240, 245), 2)
    for x in rng.uniform(0, 128, 3):
        c.line([(x, 96), (x + 14, 124)], (235, 240, 248), 2)
    return 96


def sidewalk(c, rng):
    c.rect((0, 0, 128, 80), (170, 160, 150))
    for x in range(0, 128, 32):
        c.rect((x + 2, 6, x + 28, 50), (120, 110, 105))
    for x in rng.uniform(0, 128, 10):
        col = tuple(int(v) for v in rng.integers(40, 220, 3))
        c.rect((x - 4, 52, x + 4, 80), col, radius=3)
        c.ellipse((x - 4, 44, x + 4, 52), (225, 185, 150))
    c.rect((0, 80, 128, 128), (175, 175, 170))
    for y in range(84, 128, 12):
        c.line([(0, y), (128, y)], (140, 140, 138), 1)
    for x in range(0, 128, 16):
        c.line([(x, 80), (x, 128)], (140, 140, 138), 1)
    return 114


def dirt_road(c, rng):
    _gradient(c, SKY, (205, 225, 240), 0, 64)
    c.rect((0, 64, 128, 128), GRASS)
    c.poly([(56, 64), (72, 64), (124, 128), (4, 128)], (150, 110, 70))
    for _ in range(30):
        x, y = rng.uniform(20, 108), rng.uniform(70, 128)
        c.ellipse((x - 1.5, y - 1, x + 1.5, y + 1), (110, 80, 50))
    return 114


def white_rug(c, rng):
    c.rect((0, 0, 128, 80), (175, 165, 150))
    c.rect((0, 80, 128, 128), (120, 90, 60))
    c.rect((6, 86, 122, 126), (245, 243, 238), radius=6)
    for _ in range(60):
        x, y = rng.uniform(8, 120), rng.uniform(88, 124)
        c.line([(x, y), (x + 1, y - 3)], (215, 213, 205), 1)
    return 114


BACKDROPS = {
    "plain": plain, "jungle": jungle, "snow": snow, "beach": beach, "cobblestone": cobblestone,
    "pink-fabric": pink_fabric, "wooden-floor": wooden_floor, "city": city, "mountain": mountain,
    "blue-house": blue_house, "purple-rug": purple_rug, "wheat-field": wheat_field, "autumn-tree": autumn_tree,
    "eiffel-tower": eiffel_tower, "water": water, "milk": milk, "sunflowers": sunflowers, "mirror": mirror,
    "sidewalk": sidewalk, "dirt-road": dirt_road, "white-rug": white_rug, "wooden-table": wooden_table,
}
REFLECTS = {"mirror"}


def overlay(context: str, c: Canvas, rng: np.random.Generator, ground: float) -> None:
    """What lies in front of the object: flakes, the surface it floats in, flowers."""
    if context == "snow":
        for x, y in rng.uniform(0, 128, (45, 2)):
            c.ellipse((x - 1.2, y - 1.2, x + 1.2, y + 1.2), (255, 255, 255))
    elif context in ("water", "milk"):
        base, crest = ((45, 110, 180), (130, 180, 225)) if context == "water" else ((248, 247, 240), (205, 205, 200))
        top = ground - 14
        c.rect((0, top, 128, 128), base)
        for y in np.arange(top + 2, 128, 9):
            for x in np.arange(rng.uniform(-16, 0), 128, 16):
                c.arc((x, y - 3, x + 16, y + 3), 180, 360, crest, 1.5)
    elif context == "sunflowers":
        for x in (6, 26, 104, 122):
            c.line([(x, 128), (x, 112)], (60, 120, 40), 2)
            sunflower(c, x, 110, 7)
    elif context == "autumn-tree":
        for x, y in rng.uniform(0, 128, (8, 2)):
            c.ellipse((x - 2, y - 1.5, x + 2, y + 1.5), (225, 110, 20))
