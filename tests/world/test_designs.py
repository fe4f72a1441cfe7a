"""Designs: the demo robot is held out of pretraining by construction, and so is a fixed tenth of designs."""

from __future__ import annotations

import numpy as np

from boothline.world.designs import (DEMO, Design, is_demo_like, is_held_out, pretraining_design, random_design,
                                     random_scene)
from boothline.world.vocabulary import CLASSES


def test_the_pretraining_sampler_never_draws_the_demo_design():
    rng = np.random.default_rng(0)
    drawn = [pretraining_design(rng, "toy") for _ in range(20000)] + [pretraining_design(rng) for _ in range(20000)]
    assert not any(is_demo_like(d) for d in drawn)
    assert DEMO not in drawn
    # ...while toys that share some of its features are drawn: the sampler is not simply avoiding teal.
    assert any(d.noun == "toy" and d.main == DEMO.main for d in drawn)
    assert any(d.noun == "toy" and d.emblem == DEMO.emblem for d in drawn)


def test_the_unrestricted_sampler_can_draw_demo_like_designs():
    rng = np.random.default_rng(0)
    assert any(is_demo_like(random_design(rng, "toy")) for _ in range(20000))


def test_held_out_designs_are_a_stable_tenth_kept_apart():
    rng = np.random.default_rng(1)
    designs = [random_design(rng) for _ in range(5000)]
    share = np.mean([is_held_out(d) for d in designs])
    assert 0.07 < share < 0.13
    assert all(is_held_out(pretraining_design(rng, held_out=True)) for _ in range(200))
    assert not any(is_held_out(pretraining_design(rng)) for _ in range(2000))


def test_a_design_key_names_exactly_that_design():
    assert DEMO.key == Design("toy", 0, "teal", "orange", "yellow", "plain", "heart").key
    assert DEMO.key != Design("toy", 0, "teal", "orange", "yellow", "stripes", "heart").key


def test_scenes_draw_every_class_and_only_head_classes_wear_accessories():
    rng = np.random.default_rng(2)
    scenes = [random_scene(rng, pretraining_design(rng)) for _ in range(3000)]
    assert {s.design.noun for s in scenes} == set(CLASSES)
    assert all(CLASSES[s.design.noun].has_head for s in scenes if s.accessory)
    assert any(s.accessory for s in scenes) and any(s.style for s in scenes) and any(s.prop for s in scenes)
