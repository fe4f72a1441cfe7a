"""Captions: the grammar's phrases, the registry's style templates, and every evaluation prompt covered."""

from __future__ import annotations

import numpy as np

from boothline.evaluation.protocol import PAPER_PROMPTS
from boothline.generation.styles import load_styles
from boothline.world.captions import Wording, apply_template, caption, describe, registry_entries, swapped
from boothline.world.designs import DEMO, Scene, pretraining_design, random_scene
from boothline.world.vocabulary import ACCESSORIES, COLOURS, CONTEXTS, PROPERTIES, STYLES

TEMPLATES = {name: entry["prompt"] for name, entry in registry_entries().items()}


def test_describe_names_property_colour_class_context_and_accessory():
    scene = Scene(DEMO, "beach", prop="shiny", accessory="red-hat")
    assert describe(scene, Wording(), TEMPLATES) == "a photo of a shiny teal toy on the beach wearing a red hat"
    assert describe(scene, Wording(colour=False, photo=False), TEMPLATES) == "a shiny toy on the beach wearing a red hat"
    assert describe(Scene(DEMO), Wording(photo=False), TEMPLATES, noun="sks toy") == "a teal sks toy"


def test_a_style_wraps_the_caption_in_the_registry_template_as_generate_does():
    styles = load_styles()
    scene = Scene(DEMO, "snow", style="watercolor")
    text = describe(scene, Wording(colour=False), TEMPLATES)
    assert text == styles["watercolor"].apply("a photo of a toy in the snow")
    assert apply_template("{prompt}, oil", "a toy") == "a toy, oil" and apply_template("oil", "a toy") == "a toy, oil"


def test_a_colourless_style_never_names_a_colour():
    assert "teal" not in describe(Scene(DEMO, style="film-noir"), Wording(), TEMPLATES)


def test_the_world_implements_at_least_24_registry_styles():
    assert set(STYLES) <= set(TEMPLATES) and len(STYLES) >= 24


def test_every_evaluation_prompt_phrase_is_in_the_vocabulary():
    suffixes = {*CONTEXTS.values(), *ACCESSORIES.values()}
    adjectives = {*COLOURS, *PROPERTIES.values()}
    for prompts in PAPER_PROMPTS.values():
        for _, template in prompts:
            if template.startswith("a {subject} "):
                assert template.removeprefix("a {subject} ") in suffixes, template
            else:
                assert template.removeprefix("a ").removesuffix(" {subject}") in adjectives, template


def test_captions_vary_their_wording_and_are_seeded():
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng, pretraining_design(rng)) for _ in range(200)]
    first = [caption(s, np.random.default_rng(i), TEMPLATES) for i, s in enumerate(scenes)]
    assert first == [caption(s, np.random.default_rng(i), TEMPLATES) for i, s in enumerate(scenes)]
    assert any(c.startswith("a photo of") for c in first) and any(not c.startswith("a photo of") for c in first)


def test_swapped_changes_one_factor():
    scene = Scene(DEMO, "beach", style="anime")
    assert swapped(scene, "context", "snow").context == "snow"
    assert swapped(scene, "colour", "red").design.main == "red"
    assert swapped(scene, "noun", "dog").design.noun == "dog" and swapped(scene, "noun", "dog").context == "beach"
