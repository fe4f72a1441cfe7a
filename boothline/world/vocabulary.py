"""What the world knows: its classes, colours, contexts, properties, accessories and styles.

Context, property and accessory phrases are the DreamBooth paper's own (evaluation.protocol), so every
evaluation prompt names something the world draws. Prompts outside this vocabulary give undefined pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "orange": (245, 135, 25),
    "yellow": (245, 215, 35),
    "green": (45, 165, 60),
    "teal": (20, 160, 150),
    "blue": (40, 85, 215),
    "purple": (135, 55, 185),
    "pink": (245, 125, 180),
    "brown": (125, 75, 35),
    "black": (35, 35, 35),
    "white": (240, 240, 235),
    "grey": (135, 135, 140),
}


@dataclass(frozen=True)
class ObjectClass:
    noun: str
    kind: str  # object | live, as subject.kind
    variants: int  # shape variants of the drawing
    has_head: bool  # can wear accessories


CLASSES: dict[str, ObjectClass] = {c.noun: c for c in [
    ObjectClass("toy", "object", 4, True),  # robot toys
    ObjectClass("dog", "live", 4, True),
    ObjectClass("cat", "live", 4, True),
    ObjectClass("backpack", "object", 4, False),
    ObjectClass("teapot", "object", 4, False),
    ObjectClass("vase", "object", 4, False),
]}

PATTERNS = ("plain", "stripes", "dots", "checks")
EMBLEMS = ("none", "heart", "star", "circle", "bolt", "square", "cross")

PLAIN = "plain"  # a studio backdrop: what a caption without a context shows
CONTEXTS: dict[str, str] = {  # slug -> phrase
    "jungle": "in the jungle",
    "snow": "in the snow",
    "beach": "on the beach",
    "cobblestone": "on a cobblestone street",
    "pink-fabric": "on top of pink fabric",
    "wooden-floor": "on top of a wooden floor",
    "city": "with a city in the background",
    "mountain": "with a mountain in the background",
    "blue-house": "with a blue house in the background",
    "purple-rug": "on top of a purple rug in a forest",
    "wheat-field": "with a wheat field in the background",
    "autumn-tree": "with a tree and autumn leaves in the background",
    "eiffel-tower": "with the Eiffel Tower in the background",
    "water": "floating on top of water",
    "milk": "floating in an ocean of milk",
    "sunflowers": "on top of green grass with sunflowers around it",
    "mirror": "on top of a mirror",
    "sidewalk": "on top of the sidewalk in a crowded street",
    "dirt-road": "on top of a dirt road",
    "white-rug": "on top of a white rug",
    "wooden-table": "on a wooden table",
}

# Property modifications other than a colour ("a red {subject}" is the colour factor).
PROPERTIES: dict[str, str] = {"shiny": "shiny", "wet": "wet", "cube": "cube shaped"}

ACCESSORIES: dict[str, str] = {
    "red-hat": "wearing a red hat",
    "santa-hat": "wearing a santa hat",
    "rainbow-scarf": "wearing a rainbow scarf",
    "top-hat": "wearing a black top hat and a monocle",
    "chef": "in a chef outfit",
    "firefighter": "in a firefighter outfit",
    "police": "in a police outfit",
    "pink-glasses": "wearing pink glasses",
    "yellow-shirt": "wearing a yellow shirt",
    "wizard": "in a purple wizard outfit",
}

# The registry styles the world draws (world.styles implements each); isometric and origami it does not.
STYLES: tuple[str, ...] = (
    "photographic", "cinematic", "oil-painting", "watercolor", "anime", "manga", "cyberpunk", "pixel-art",
    "line-art", "3d-render", "ukiyo-e", "pencil-sketch", "charcoal", "comic-book", "low-poly", "claymation",
    "impressionist", "pop-art", "art-nouveau", "steampunk", "vaporwave", "stained-glass", "film-noir",
    "fantasy-art", "vintage-polaroid", "flat-vector",
)

# Styles that hide the object's colour (grey, duotone or recoloured): captions do not name a colour under them,
# and colour accuracy is measured without them.
COLOURLESS_STYLES = frozenset({"manga", "line-art", "pencil-sketch", "charcoal", "film-noir", "cyberpunk",
                               "vaporwave", "steampunk", "pop-art"})
