"""The six classes, each drawn from a Design on a transparent 128-unit layer (bottom edge at y = 112).

Each drawer returns where the head and torso are, so accessories can be put on; objects without a head
(backpack, teapot, vase) return None for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from boothline.world.canvas import Canvas, shade
from boothline.world.designs import Design
from boothline.world.vocabulary import COLOURS

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Anchors:
    head: Box | None
    torso: Box | None


def emblem(c: Canvas, name: str, cx: float, cy: float, r: float, colour) -> None:
    if name == "heart":
        c.ellipse((cx - r, cy - r * 0.8, cx, cy + r * 0.1), colour)
        c.ellipse((cx, cy - r * 0.8, cx + r, cy + r * 0.1), colour)
        c.poly([(cx - r * 0.95, cy - r * 0.2), (cx + r * 0.95, cy - r * 0.2), (cx, cy + r)], colour)
    elif name == "star":
        import math

        points = [(cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
                   cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5)) for i in range(10)]
        c.poly(points, colour)
    elif name == "circle":
        c.ellipse((cx - r * 0.8, cy - r * 0.8, cx + r * 0.8, cy + r * 0.8), colour)
    elif name == "bolt":
        c.poly([(cx + r * 0.3, cy - r), (cx - r * 0.6, cy + r * 0.15), (cx, cy + r * 0.15),
                (cx - r * 0.3, cy + r), (cx + r * 0.6, cy - r * 0.15), (cx, cy - r * 0.15)], colour)
    elif name == "square":
        c.rect((cx - r * 0.7, cy - r * 0.7, cx + r * 0.7, cy + r * 0.7), colour)
    elif name == "cross":
        c.rect((cx - r * 0.3, cy - r, cx + r * 0.3, cy + r), colour)
        c.rect((cx - r, cy - r * 0.3, cx + r, cy + r * 0.3), colour)


def emblem_colour(d: Design):
    main, part = COLOURS[d.main], COLOURS[d.part]
    return part if sum(abs(a - b) for a, b in zip(main, part)) > 120 else COLOURS["white"]


def toy(c: Canvas, d: Design) -> Anchors:
    main, part, accent = COLOURS[d.main], COLOURS[d.part], COLOURS[d.accent]
    edge, limb = shade(main, 0.45), shade(main, 0.5)
    if d.variant == 0:  # boxy: square head with a visor and an antenna ball
        c.line([(64, 40), (64, 28)], edge, 3)
        c.ellipse((58, 20, 70, 32), accent, edge)
        c.rect((12, 66, 21, 86), limb)
        c.rect((107, 66, 116, 86), limb)
        c.rect((44, 98, 56, 112), limb)
        c.rect((72, 98, 84, 112), limb)
        c.patterned("rect", (40, 38, 88, 66), main, part, d.pattern, edge, 8)
        c.rect((46, 46, 82, 57), part, radius=4)
        c.patterned("rect", (22, 66, 106, 100), main, part, d.pattern, edge, 6)
        emblem(c, d.emblem, 64, 83, 10, emblem_colour(d))
        return Anchors((40, 38, 88, 66), (22, 66, 106, 100))
    if d.variant == 1:  # round: a ball head with two eyes on a dome body
        c.line([(34, 74), (16, 92)], limb, 4)
        c.line([(94, 74), (112, 92)], limb, 4)
        c.ellipse((9, 88, 21, 100), accent)
        c.ellipse((107, 88, 119, 100), accent)
        c.rect((46, 100, 58, 112), limb)
        c.rect((70, 100, 82, 112), limb)
        c.patterned("ellipse", (30, 62, 98, 106), main, part, d.pattern, edge)
        c.patterned("ellipse", (42, 26, 86, 66), main, part, d.pattern, edge)
        c.ellipse((51, 38, 61, 48), part)
        c.ellipse((67, 38, 77, 48), part)
        emblem(c, d.emblem, 64, 84, 9, emblem_colour(d))
        return Anchors((42, 26, 86, 66), (30, 62, 98, 106))
    if d.variant == 2:  # tall: one-eyed head on a column body, on treads
        c.rect((48, 32, 80, 58), main, edge, radius=3)
        c.ellipse((57, 38, 71, 52), part)
        c.rect((60, 58, 68, 64), limb)
        c.line([(44, 70), (26, 84), (30, 92)], limb, 4)
        c.line([(84, 70), (102, 84), (98, 92)], limb, 4)
        c.patterned("rect", (42, 64, 86, 96), main, part, d.pattern, edge, 4)
        c.rect((30, 94, 98, 112), part, shade(part, 0.5), radius=8)
        for x in (40, 56, 72, 88):
            c.ellipse((x - 5, 98, x + 5, 108), accent)
        emblem(c, d.emblem, 64, 80, 9, emblem_colour(d))
        return Anchors((48, 32, 80, 58), (42, 64, 86, 96))
    # wide: a broad head with two antennae on a broad body and short legs
    for x in (40, 88):
        c.line([(x, 50), (x - 4 if x < 64 else x + 4, 34)], edge, 3)
        c.ellipse((x - 10 if x < 64 else x - 2, 26, x + 2 if x < 64 else x + 10, 38), accent)
    c.rect((8, 78, 20, 96), limb, radius=4)
    c.rect((108, 78, 120, 96), limb, radius=4)
    c.rect((34, 102, 50, 112), limb)
    c.rect((78, 102, 94, 112), limb)
    c.patterned("rect", (24, 48, 104, 74), main, part, d.pattern, edge, 10)
    c.rect((34, 56, 56, 66), part, radius=3)
    c.rect((72, 56, 94, 66), part, radius=3)
    c.patterned("rect", (18, 74, 110, 104), main, part, d.pattern, edge, 4)
    emblem(c, d.emblem, 64, 89, 10, emblem_colour(d))
    return Anchors((24, 48, 104, 74), (18, 74, 110, 104))


def dog(c: Canvas, d: Design) -> Anchors:
    main, part, accent = COLOURS[d.main], COLOURS[d.part], COLOURS[d.accent]
    edge = shade(main, 0.45)
    long_body = d.variant == 2
    body = (10, 66, 96, 94) if long_body else (18, 58, 88, 92)
    leg_top, legs = (88, (16, 28, 76, 86)) if long_body else (84, (24, 36, 66, 78))
    c.line([(body[0] + 4, body[1] + 8), (body[0] - 8, body[1] - 12)], main, 6)
    for x in legs:
        c.rect((x, leg_top, x + 9, 112), main, edge)
    if d.variant == 3:  # fluffy: a scalloped coat
        for i in range(7):
            x = body[0] + i * (body[2] - body[0]) / 6
            c.ellipse((x - 9, body[1] - 6, x + 9, body[1] + 12), main, edge)
    c.patterned("ellipse", body, main, part, d.pattern, edge)
    head = (70, 30, 106, 66) if not long_body else (78, 36, 112, 70)
    hx0, hy0, hx1, hy1 = head
    c.ellipse((hx1 - 10, hy0 + 14, hx1 + 12, hy0 + 30), main, edge)  # snout
    c.ellipse(head, main, edge)
    c.ellipse((hx1 + 6, hy0 + 15, hx1 + 13, hy0 + 22), (25, 25, 25))  # nose
    c.ellipse((hx0 + 20, hy0 + 10, hx0 + 26, hy0 + 16), (25, 25, 25))  # eye
    if d.variant == 1:  # pointy ears
        c.poly([(hx0 + 4, hy0 + 8), (hx0 + 8, hy0 - 12), (hx0 + 18, hy0 + 2)], part, edge)
    else:  # floppy ears
        c.ellipse((hx0 - 2, hy0 + 2, hx0 + 12, hy0 + 30), part, edge)
    c.rect((hx0 - 2, hy1 - 6, hx0 + 20, hy1), accent, radius=2)  # collar
    emblem(c, d.emblem, hx0 + 9, hy1 + 4, 5, accent if d.emblem != "none" else accent)
    return Anchors(head, body)


def cat(c: Canvas, d: Design) -> Anchors:
    main, part, accent = COLOURS[d.main], COLOURS[d.part], COLOURS[d.accent]
    edge = shade(main, 0.45)
    if d.variant == 1:  # lying down
        body, head = (20, 80, 100, 112), (12, 50, 50, 88)
    elif d.variant == 2:  # chubby
        body, head = (26, 62, 102, 112), (40, 28, 88, 72)
    else:
        body, head = (36, 64, 92, 112), (42, 30, 86, 72)
    c.line([(body[2] - 6, body[3] - 6), (body[2] + 12, body[3] - 20), (body[2] + 10, body[3] - 44)], main, 6)
    c.patterned("ellipse", body, main, part, d.pattern, edge)
    hx0, hy0, hx1, hy1 = head
    ear = 22 if d.variant == 3 else 12
    w = hx1 - hx0
    c.poly([(hx0 + 2, hy0 + 12), (hx0 + w * 0.15, hy0 - ear), (hx0 + w * 0.45, hy0 + 4)], main, edge)
    c.poly([(hx1 - 2, hy0 + 12), (hx1 - w * 0.15, hy0 - ear), (hx1 - w * 0.55, hy0 + 4)], main, edge)
    c.poly([(hx0 + w * 0.12, hy0 + 8), (hx0 + w * 0.17, hy0 - ear + 8), (hx0 + w * 0.35, hy0 + 5)], part)
    c.poly([(hx1 - w * 0.12, hy0 + 8), (hx1 - w * 0.17, hy0 - ear + 8), (hx1 - w * 0.35, hy0 + 5)], part)
    c.ellipse(head, main, edge)
    cy = (hy0 + hy1) / 2
    c.ellipse((hx0 + w * 0.22, cy - 6, hx0 + w * 0.38, cy + 2), accent)
    c.ellipse((hx1 - w * 0.38, cy - 6, hx1 - w * 0.22, cy + 2), accent)
    c.poly([(hx0 + w * 0.45, cy + 6), (hx0 + w * 0.55, cy + 6), (hx0 + w * 0.5, cy + 10)], (220, 110, 130))
    for dy in (-2, 3):
        c.line([(hx0 + w * 0.3, cy + 8 + dy), (hx0 - 6, cy + 6 + 2 * dy)], edge, 1)
        c.line([(hx1 - w * 0.3, cy + 8 + dy), (hx1 + 6, cy + 6 + 2 * dy)], edge, 1)
    chest = ((body[0] + body[2]) / 2, body[1] + 16)
    emblem(c, d.emblem, chest[0], chest[1], 7, emblem_colour(d))
    return Anchors(head, body)


def backpack(c: Canvas, d: Design) -> Anchors:
    main, part, accent = COLOURS[d.main], COLOURS[d.part], COLOURS[d.accent]
    edge = shade(main, 0.45)
    c.arc((50, 22, 78, 46), 180, 360, part, 5)  # handle
    c.rect((26, 44, 34, 104), accent, radius=3)  # straps behind
    c.rect((94, 44, 102, 104), accent, radius=3)
    if d.variant == 3:  # side pockets
        c.rect((20, 74, 36, 104), part, edge, radius=5)
        c.rect((92, 74, 108, 104), part, edge, radius=5)
    top = 30 if d.variant == 1 else 36
    c.patterned("rect", (32, top, 96, 112), main, part, d.pattern, edge, 30 if d.variant == 1 else 12)
    if d.variant == 2:  # roll-top
        c.rect((30, 30, 98, 44), part, edge, radius=4)
        c.rect((60, 38, 68, 60), accent)
    c.rect((40, 72, 88, 106), part, shade(part, 0.5), radius=8)  # front pocket
    c.line([(44, 80), (84, 80)], shade(part, 0.5), 1.5)
    emblem(c, d.emblem, 64, 92, 8, emblem_colour(d) if emblem_colour(d) != part else COLOURS["white"])
    return Anchors(None, None)


def teapot(c: Canvas, d: Design) -> Anchors:
    main, part, accent = COLOURS[d.main], COLOURS[d.part], COLOURS[d.accent]
    edge = shade(main, 0.45)
    body = {0: (28, 56, 100, 112), 1: (36, 44, 92, 112), 2: (18, 72, 110, 112), 3: (30, 52, 98, 112)}[d.variant]
    x0, y0, x1, y1 = body
    c.arc((x0 - 14, y0 + 8, x0 + 18, y1 - 12), 90, 270, part, 6)  # handle
    c.poly([(x1 - 8, y0 + 22), (x1 + 16, y0 - 2), (x1 + 20, y0 + 2), (x1 - 2, y1 - 14)], main, edge)  # spout
    if d.variant == 3:  # bell: a flared skirt
        c.poly([(x0 + 6, y0 + 10), (x1 - 6, y0 + 10), (x1 + 6, y1), (x0 - 6, y1)], main, edge)
    c.patterned("ellipse", body, main, part, d.pattern, edge)
    cx = (x0 + x1) / 2
    c.ellipse((cx - 20, y0 - 8, cx + 20, y0 + 8), part, shade(part, 0.5))  # lid
    c.ellipse((cx - 5, y0 - 16, cx + 5, y0 - 6), accent)  # knob
    emblem(c, d.emblem, cx, (y0 + y1) / 2 + 4, 9, emblem_colour(d))
    return Anchors(None, None)


def vase(c: Canvas, d: Design) -> Anchors:
    main, part, accent = COLOURS[d.main], COLOURS[d.part], COLOURS[d.accent]
    edge = shade(main, 0.45)
    if d.variant == 0:  # amphora with two handles
        c.arc((30, 36, 52, 66), 90, 270, part, 4)
        c.arc((76, 36, 98, 66), 270, 90, part, 4)
        c.rect((52, 26, 76, 50), main, edge)
        c.patterned("ellipse", (34, 44, 94, 112), main, part, d.pattern, edge)
        rim, band = (46, 22, 82, 30), (38, 70, 90, 76)
    elif d.variant == 1:  # cylinder
        c.patterned("rect", (42, 28, 86, 112), main, part, d.pattern, edge, 4)
        rim, band = (38, 24, 90, 32), (42, 90, 86, 96)
    elif d.variant == 2:  # bottle: round body, long neck
        c.rect((56, 20, 72, 66), main, edge)
        c.patterned("ellipse", (30, 58, 98, 112), main, part, d.pattern, edge)
        rim, band = (52, 16, 76, 24), (56, 40, 72, 46)
    else:  # bowl
        c.patterned("ellipse", (16, 40, 112, 112), main, part, d.pattern, edge)
        c.rect((10, 30, 118, 64), (0, 0, 0, 0))  # cut the top off: a bowl
        rim, band = (16, 58, 112, 70), (30, 92, 98, 98)
    c.ellipse(rim, part, shade(part, 0.5))
    c.rect(band, accent)
    ys = {0: 92, 1: 64, 2: 86, 3: 80}[d.variant]
    emblem(c, d.emblem, 64, ys, 8, emblem_colour(d))
    return Anchors(None, None)


DRAWERS = {"toy": toy, "dog": dog, "cat": cat, "backpack": backpack, "teapot": teapot, "vase": vase}


def draw_object(design: Design, size: int, cube: bool = False) -> tuple[Canvas, Anchors]:
    canvas = Canvas(size, cube=cube)
    return canvas, DRAWERS[design.noun](canvas, design)
