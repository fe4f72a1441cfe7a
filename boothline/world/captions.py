"""Captions from a small grammar: "a photo of a shiny red toy on the beach", a style's template around it.

`describe` is deterministic given what to mention (`Wording`); `caption` draws the wording at random, so
the same scene is described several ways across a dataset. The style templates are the style registry's
own (`registry/styles.yaml`, applied by the same rule as generation.styles), so a style name in
`boothline generate` selects what the model learnt for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml

from boothline.world.designs import Scene
from boothline.world.vocabulary import ACCESSORIES, COLOURLESS_STYLES, CONTEXTS, PLAIN, PROPERTIES

QUALITY = "high quality, detailed"
PLACEHOLDER = "{prompt}"


def apply_template(template: str, prompt: str) -> str:
    """A style's template around `prompt`; a template without `{prompt}` follows the prompt."""
    return template.replace(PLACEHOLDER, prompt) if PLACEHOLDER in template else f"{prompt}, {template}"


def registry_entries(path: str | Path = "registry/styles.yaml") -> dict[str, dict]:
    """The style registry's entries by name, read as they are (generation.styles validates them)."""
    return {entry["name"]: entry for entry in yaml.safe_load(Path(path).read_text())["styles"]}


@dataclass(frozen=True)
class Wording:
    colour: bool = True  # "a red toy" or "a toy"
    photo: bool = True  # "a photo of a toy" or "a toy"
    article: bool = True  # "a toy" or "toy"
    sitting: bool = False  # "a toy sitting on the beach" (contexts that start with "on")
    quality: bool = False  # ", high quality, detailed" at the end


def random_wording(rng: np.random.Generator) -> Wording:
    return Wording(colour=rng.random() < 0.6, photo=rng.random() < 0.5, article=rng.random() < 0.85,
                   sitting=rng.random() < 0.2, quality=rng.random() < 0.3)


def subject_phrase(scene: Scene, wording: Wording, noun: str | None = None) -> str:
    """"shiny red toy": the property, the colour and the noun (or `noun`, e.g. "sks toy", in its place)."""
    words = []
    if scene.prop:
        words.append(PROPERTIES[scene.prop])
    if wording.colour and scene.style not in COLOURLESS_STYLES:
        words.append(scene.design.main)
    words.append(noun or scene.design.noun)
    return " ".join(words)


def describe(scene: Scene, wording: Wording, templates: Mapping[str, str], noun: str | None = None) -> str:
    text = subject_phrase(scene, wording, noun)
    if wording.article:
        text = f"a {text}"
    if wording.photo:
        text = f"a photo of {text}"
    if scene.context != PLAIN:
        phrase = CONTEXTS[scene.context]
        if wording.sitting and phrase.startswith("on "):
            phrase = f"sitting {phrase}"
        text = f"{text} {phrase}"
    if scene.accessory:
        text = f"{text} {ACCESSORIES[scene.accessory]}"
    if scene.style:
        text = apply_template(templates[scene.style], text)
    if wording.quality:
        text = f"{text}, {QUALITY}"
    return text


def caption(scene: Scene, rng: np.random.Generator, templates: Mapping[str, str]) -> str:
    return describe(scene, random_wording(rng), templates)


def swapped(scene: Scene, factor: str, value) -> Scene:
    """`scene` with one factor (noun, colour, context, style) set to `value`: a zero-shot candidate."""
    if factor == "noun":
        return replace(scene, design=replace(scene.design, noun=value))
    if factor == "colour":
        return scene.recoloured(value)
    return replace(scene, **{factor: value})
