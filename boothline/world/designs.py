"""Designs (what makes one toy that toy) and scenes (one design, drawn somewhere, some way).

A design is a class, a shape variant, three colours, a pattern and an emblem. The demo subject is one toy
design that pretraining never draws: every design with the demo's body colour, visor colour and emblem is
held out (`is_demo_like`), and so is a fixed tenth of all designs (`is_held_out`), kept for measuring how
the encoders do on designs they never saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace

import numpy as np

from boothline.world.vocabulary import (
    ACCESSORIES,
    CLASSES,
    COLOURS,
    CONTEXTS,
    EMBLEMS,
    PATTERNS,
    PLAIN,
    PROPERTIES,
    STYLES,
)

COLOUR_NAMES = tuple(COLOURS)


@dataclass(frozen=True)
class Design:
    noun: str
    variant: int
    main: str  # the body colour: what "a red toy" names
    part: str  # visor, ears, pocket, lid...
    accent: str  # antenna ball, collar, buttons, knob...
    pattern: str
    emblem: str

    @property
    def key(self) -> str:
        """A stable id: the same design always has it, another design never does."""
        text = "|".join(str(v) for v in asdict(self).values())
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# The demo subject: the boxy robot with a teal body, an orange visor, a yellow antenna ball and a heart.
DEMO = Design("toy", 0, "teal", "orange", "yellow", "plain", "heart")


def is_demo_like(design: Design) -> bool:
    return (design.noun, design.main, design.part, design.emblem) == (DEMO.noun, DEMO.main, DEMO.part, DEMO.emblem)


def is_held_out(design: Design) -> bool:
    return int(design.key, 16) % 10 == 0


@dataclass(frozen=True)
class Scene:
    design: Design
    context: str = PLAIN  # a CONTEXTS slug or PLAIN
    style: str | None = None  # a vocabulary.STYLES name
    prop: str | None = None  # a PROPERTIES slug
    accessory: str | None = None  # an ACCESSORIES slug
    scale: float = 1.0  # object height, relative to the usual
    dx: float = 0.0  # offset from the centre, in fractions of the image
    dy: float = 0.0
    flip: bool = False
    rotation: float = 0.0  # degrees
    seed: int = 0  # texture details: leaves, stones, flakes, brush strokes

    def recoloured(self, main: str) -> "Scene":
        return replace(self, design=replace(self.design, main=main))


def random_design(rng: np.random.Generator, noun: str | None = None) -> Design:
    noun = noun or str(rng.choice(list(CLASSES)))
    main, part, accent = rng.choice(len(COLOURS), size=3, replace=False)
    return Design(noun, int(rng.integers(CLASSES[noun].variants)), COLOUR_NAMES[main], COLOUR_NAMES[part],
                  COLOUR_NAMES[accent], str(rng.choice(PATTERNS, p=[0.55, 0.15, 0.15, 0.15])),
                  str(rng.choice(EMBLEMS, p=[0.4] + [0.1] * 6)))


def pretraining_design(rng: np.random.Generator, noun: str | None = None, held_out: bool = False) -> Design:
    """A design from the pretraining split (or, with `held_out`, the measuring split); never demo-like."""
    while True:
        design = random_design(rng, noun)
        if not is_demo_like(design) and is_held_out(design) == held_out:
            return design


def random_pose(rng: np.random.Generator) -> dict:
    return {"scale": float(rng.uniform(0.8, 1.15)), "dx": float(rng.uniform(-0.12, 0.12)),
            "dy": float(rng.uniform(-0.06, 0.06)), "flip": bool(rng.random() < 0.5),
            "rotation": float(rng.uniform(-10, 10)), "seed": int(rng.integers(2**31))}


def random_scene(rng: np.random.Generator, design: Design, *, p_context: float = 0.75, p_style: float = 0.4,
                 p_prop: float = 0.12, p_accessory: float = 0.15) -> Scene:
    """`design` somewhere: a context most of the time, sometimes a style, a property or an accessory."""
    context = str(rng.choice(list(CONTEXTS))) if rng.random() < p_context else PLAIN
    style = str(rng.choice(STYLES)) if rng.random() < p_style else None
    prop = str(rng.choice(list(PROPERTIES))) if rng.random() < p_prop else None
    wears = CLASSES[design.noun].has_head and rng.random() < p_accessory
    accessory = str(rng.choice(list(ACCESSORIES))) if wears else None
    return Scene(design, context, style, prop, accessory, **random_pose(rng))
