"""Prompt enhancement: subject insertion, style template, quality tokens, duplicate phrases, negatives, 77 tokens."""

import pytest
from transformers import CLIPTokenizer

from boothline.errors import PromptError
from boothline.generation.prompts import enhance, merge_phrases, token_overflow
from boothline.generation.styles import Style
from boothline.params import fill_subject

OIL = Style("oil-painting", "Oil", "oil painting of {prompt}, impasto, detailed", "photo, blurry")


@pytest.mark.parametrize("prompt, expected", [
    ("{subject} on the beach", "sks dog on the beach"),
    ("a photo of {token} {class_noun}", "a photo of sks dog"),
    ("a sks in the snow", "a sks dog in the snow"),  # a bare token gets its class noun
    ("a sks dog in the snow", "a sks dog in the snow"),  # already there: unchanged
    ("{subject} dog at night", "sks dog at night"),
    ("sksx and asks", "sksx and asks"),  # only the whole word is the token
    ("a cat on a sofa", "a cat on a sofa"),  # not about the subject
])
def test_fill_subject(prompt, expected):
    assert fill_subject(prompt, "sks", "dog") == expected


def test_unknown_placeholder_is_an_error():
    with pytest.raises(PromptError, match=r"unknown placeholder\(s\) \{subjct\}"):
        fill_subject("{subjct} on the beach", "sks", "dog")


def test_enhance_full_chain():
    final = enhance("{subject} on the beach", OIL, token="sks", class_noun="dog",
                    quality_tokens=("high quality", "detailed"), default_negative="lowres, Blurry, watermark")
    # style around the prompt, quality tokens after, "detailed" kept once
    assert final.prompt == "oil painting of sks dog on the beach, impasto, detailed, high quality"
    # the style's negatives first, then the defaults it lacks (case-insensitive)
    assert final.negative == "photo, blurry, lowres, watermark"


def test_quality_tokens_configurable_and_deterministic():
    plain = enhance("sks", OIL, token="sks", class_noun="dog", quality_tokens=(), default_negative="")
    assert plain.prompt == "oil painting of sks dog, impasto, detailed"
    assert plain.negative == "photo, blurry"
    again = enhance("sks", OIL, token="sks", class_noun="dog", quality_tokens=(), default_negative="")
    assert again == plain


def test_merge_phrases_normalises_spacing_and_drops_empty():
    assert merge_phrases("a  cat,, red hat ,A cat", "RED HAT, blue") == "a cat, red hat, blue"


def test_token_overflow_reports_the_cut_off_text(tiny_dir):
    tokenizer = CLIPTokenizer.from_pretrained(tiny_dir / "tokenizer")
    assert token_overflow(tokenizer, "a photo of sks dog, oil painting") == ""
    words = ["dog"] * 75 + ["on", "the", "beach"]
    overflow = token_overflow(tokenizer, " ".join(words))
    assert overflow == "on the beach"
