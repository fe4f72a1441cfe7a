"""The style registry: the curated file is valid and varied; bad files report every problem; unknown names list the known."""

import re

import pytest
import yaml

from boothline.generation.styles import PACKAGED_REGISTRY, StyleError, load_styles, read_styles, select_styles


def write_styles(path, entries):
    path.write_text(yaml.safe_dump({"styles": entries}, sort_keys=False))
    return path


def style(name="my-style", **fields):
    return {"name": name, "description": "A look", "prompt": "drawing of {prompt}", "negative": "photo", **fields}


def test_curated_registry_is_valid_and_varied():
    styles = read_styles(PACKAGED_REGISTRY)
    names = [s.name for s in styles]
    assert len(names) >= 24 and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in names)
    for expected in ("oil-painting", "watercolor", "anime", "cyberpunk", "pixel-art", "line-art", "photographic",
                     "cinematic", "3d-render", "ukiyo-e"):
        assert expected in names
    assert all(s.prompt.count("{prompt}") <= 1 and s.description and s.negative for s in styles)
    assert len({s.prompt for s in styles}) == len(styles)  # distinct looks, not renamed copies
    assert any(s.settings for s in styles)


def test_template_with_and_without_placeholder(tmp_path):
    path = write_styles(tmp_path / "s.yaml", [style("a", prompt="oil painting of {prompt}, impasto"),
                                              style("b", prompt="impasto, thick paint")])
    a, b = read_styles(path)
    assert a.apply("a cat") == "oil painting of a cat, impasto"
    assert b.apply("a cat") == "a cat, impasto, thick paint"  # no {prompt}: the prompt comes first


def test_every_problem_reported_at_once(tmp_path):
    path = write_styles(tmp_path / "bad.yaml", [
        style("Oil Painting"),
        style("twice", prompt="{prompt} and {prompt}"),
        style("empty", negative="  "),
        style("odd", prompt="a {subject} in {prompt}"),
        style("knobs", settings={"steps": 0, "cfg": 3}),
        style("extra", colour="red"),
    ])
    with pytest.raises(StyleError) as err:
        read_styles(path)
    lines = str(err.value).splitlines()
    assert all(line.startswith(f"{path}: style ") for line in lines)
    message = str(err.value)
    assert "'Oil Painting' must be a slug" in message
    assert "style twice: prompt template contains {prompt} 2 times" in message
    assert "style empty: negative is missing or empty" in message
    assert "style odd: prompt template has unknown placeholder(s) {subject}" in message
    assert "style knobs: settings.steps" in message and "settings.cfg: unknown key" in message
    assert "style extra: unknown key 'colour'" in message


def test_duplicate_names_within_and_across_files(tmp_path):
    with pytest.raises(StyleError, match="name already defined"):
        load_styles(registry=write_styles(tmp_path / "a.yaml", [style("x"), style("x")]))
    extra = write_styles(tmp_path / "extra.yaml", [style("anime")])
    with pytest.raises(StyleError, match=r"extra.yaml: style anime: name already defined in .*styles.yaml"):
        load_styles(extra)


def test_extra_styles_are_added_after_the_registry(tmp_path):
    extra = write_styles(tmp_path / "extra.yaml", [style("house-style", settings={"guidance": 4.5})])
    styles = load_styles(extra)
    assert list(styles)[-1] == "house-style"
    assert styles["house-style"].settings == {"guidance": 4.5}
    assert len(styles) == len(read_styles(PACKAGED_REGISTRY)) + 1


def test_select_all_names_and_unknown():
    styles = load_styles()
    assert [s.name for s in select_styles(styles, "all")] == list(styles)
    assert [s.name for s in select_styles(styles, ("anime", "watercolor", "anime"))] == ["anime", "watercolor"]
    with pytest.raises(StyleError) as err:
        select_styles(styles, ("anime", "vaporware"))
    assert "unknown style(s) vaporware" in str(err.value) and "known styles: photographic, cinematic" in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(StyleError, match="style file not found"):
        read_styles(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- just a list\n")
    with pytest.raises(StyleError, match="top-level 'styles:' list"):
        read_styles(tmp_path / "list.yaml")
