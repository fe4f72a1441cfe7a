"""The DreamBooth paper's prompt protocol: counts per kind, filling, the CLIP-T text, selection, user lists."""

from __future__ import annotations

from collections import Counter

import pytest

from boothline.errors import StageError
from boothline.evaluation.protocol import (ACCESSORISATION, CUSTOM, PAPER_PROMPTS, PROPERTY, RECONTEXTUALISATION, eval_prompts,
                                stratified, without_token)
from boothline.params import parse_params


def make(kind="object", **eval_section):
    return parse_params({"subject": {"token": "sks", "class_noun": "dog", "kind": kind}, "eval": eval_section})


def test_object_subjects_get_20_recontextualisation_and_5_property_prompts():
    prompts = eval_prompts(make("object"))
    assert len(prompts) == 25
    assert Counter(p.category for p in prompts) == {RECONTEXTUALISATION: 20, PROPERTY: 5}
    assert prompts[0].prompt == "a sks dog in the jungle"
    assert prompts[-1].prompt == "a cube shaped sks dog"


def test_live_subjects_get_10_recontextualisation_10_accessorisation_and_5_property_prompts():
    prompts = eval_prompts(make("live"))
    assert Counter(p.category for p in prompts) == {RECONTEXTUALISATION: 10, ACCESSORISATION: 10, PROPERTY: 5}
    assert "a sks dog in a purple wizard outfit" in [p.prompt for p in prompts]
    assert len({p.prompt for p in prompts}) == 25


def test_every_prompt_names_the_subject_and_its_clip_text_only_the_class():
    for kind in PAPER_PROMPTS:
        for p in eval_prompts(make(kind)):
            assert "sks dog" in p.prompt and "{" not in p.prompt
            assert p.text_prompt == p.prompt.replace("sks ", "")
            assert "sks" not in p.text_prompt.split()


def test_without_token_removes_only_the_whole_word():
    assert without_token("a sks dog on a sksfoo mat", "sks") == "a dog on a sksfoo mat"


def test_max_prompts_keeps_each_category_in_proportion_in_paper_order():
    prompts = eval_prompts(make("object", max_prompts=5))
    assert Counter(p.category for p in prompts) == {RECONTEXTUALISATION: 4, PROPERTY: 1}
    live = eval_prompts(make("live", max_prompts=5))
    assert Counter(p.category for p in live) == {RECONTEXTUALISATION: 2, ACCESSORISATION: 2, PROPERTY: 1}
    full = [p.prompt for p in eval_prompts(make("live"))]
    assert [full.index(p.prompt) for p in live] == sorted(full.index(p.prompt) for p in live)


def test_stratified_handles_every_count_and_duplicates():
    items = [("a", "x")] * 3 + [("b", "y"), ("b", "z")]
    for count in range(1, 6):
        chosen = stratified(items, count)
        assert len(chosen) == count
    assert stratified(items, 5) == items


def test_user_prompts_replace_the_paper_list():
    prompts = eval_prompts(make(prompts=["{subject} on the moon", "a {token} {class_noun} eating", "sks dog, pixel art"]))
    assert [p.prompt for p in prompts] == ["sks dog on the moon", "a sks dog eating", "sks dog, pixel art"]
    assert [p.text_prompt for p in prompts] == ["dog on the moon", "a dog eating", "dog, pixel art"]
    assert {p.category for p in prompts} == {CUSTOM}


@pytest.mark.parametrize("prompts, message", [
    ([], "empty list"),
    (["{subject} on the moon", "a dog on the moon"], "eval.prompts[1]"),
])
def test_bad_user_prompts_are_refused_with_the_key(prompts, message):
    with pytest.raises(StageError, match=message.replace("[", r"\[")):
        eval_prompts(make(prompts=prompts))
