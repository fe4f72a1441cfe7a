"""The world renderer: deterministic per scene, every vocabulary entry drawn and visibly different."""

from __future__ import annotations

import numpy as np
import pytest

from boothline.world.designs import DEMO, Design, Scene, pretraining_design, random_pose, random_scene
from boothline.world.render import render
from boothline.world.vocabulary import ACCESSORIES, CLASSES, CONTEXTS, PLAIN, PROPERTIES, STYLES

DOG = Design("dog", 0, "brown", "black", "red", "plain", "none")


def pixels(scene: Scene, size: int = 64) -> np.ndarray:
    return np.asarray(render(scene, size), dtype=np.int16)


def test_the_same_scene_always_gives_the_same_pixels():
    rng = np.random.default_rng(7)
    scenes = [random_scene(rng, pretraining_design(rng)) for _ in range(12)]
    for scene in scenes:
        first = render(scene)
        assert first.size == (64, 64) and first.mode == "RGB"
        assert first.tobytes() == render(scene).tobytes()


def test_the_seed_changes_the_texture_and_nothing_else_is_random():
    a, b = Scene(DEMO, "jungle", seed=1), Scene(DEMO, "jungle", seed=2)
    assert render(a).tobytes() != render(b).tobytes()


def test_renders_at_any_size():
    assert render(Scene(DEMO), 128).size == (128, 128)


@pytest.mark.parametrize("factor, values, make", [
    ("context", [PLAIN, *CONTEXTS], lambda v: Scene(DEMO, v)),
    ("style", list(STYLES), lambda v: Scene(DEMO, "beach", style=v)),
    ("class", list(CLASSES), lambda v: Scene(Design(v, 0, "red", "blue", "yellow", "plain", "star"))),
    ("accessory", list(ACCESSORIES), lambda v: Scene(DOG, accessory=v)),
    ("property", list(PROPERTIES), lambda v: Scene(Design("toy", 1, "red", "blue", "yellow", "plain", "star"), prop=v)),
])
def test_every_value_of_a_factor_draws_a_different_picture(factor, values, make):
    images = {value: pixels(make(value)) for value in values}
    for i, a in enumerate(values):
        for b in values[i + 1:]:
            assert np.abs(images[a] - images[b]).mean() > 2, f"{factor}: {a!r} and {b!r} look the same"


def test_an_accessory_is_drawn_only_on_classes_with_a_head():
    teapot = Design("teapot", 0, "red", "blue", "yellow", "plain", "none")
    assert render(Scene(teapot, accessory="red-hat")).tobytes() == render(Scene(teapot)).tobytes()


def test_poses_vary_but_keep_the_object_in_the_picture():
    rng = np.random.default_rng(3)
    backdrop = pixels(Scene(Design("toy", 0, "white", "white", "white", "plain", "none"), seed=5))
    for _ in range(10):
        pose = random_pose(rng)
        scene = Scene(Design("toy", 0, "red", "red", "red", "plain", "none"), **{**pose, "seed": 5})
        image = pixels(scene)
        red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
        assert red.sum() > 60, pose
        assert not red[:, 0].any() and not red[:, -1].any(), pose  # not cut off at the sides
    assert backdrop.shape == (64, 64, 3)
