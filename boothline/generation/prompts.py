"""Rule-based, deterministic prompt enhancement: the exact text each image is rendered from.

prompt --subject--> "a photo of sks dog" --style--> "oil painting of a photo of sks dog, impasto, ..."
       --quality tokens--> "..., high quality, detailed" --duplicate phrases removed--> final prompt.
The negative prompt is the style's merged with the default one. Nothing here depends on the model except
`token_overflow`, which reports what a tokenizer's 77-token window would cut off.
"""

from __future__ import annotations

from dataclasses import dataclass

from boothline.generation.styles import Style
from boothline.params import fill_subject


@dataclass(frozen=True)
class FinalPrompt:
    prompt: str
    negative: str


def phrases(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split(",") if p.strip()]


def merge_phrases(*texts: str) -> str:
    """Comma-separated phrases of all texts in order, each phrase once (compared ignoring case and spacing)."""
    seen: set[str] = set()
    kept: list[str] = []
    for text in texts:
        for phrase in phrases(text):
            if phrase.lower() not in seen:
                seen.add(phrase.lower())
                kept.append(phrase)
    return ", ".join(kept)


def enhance(prompt: str, style: Style, *, token: str, class_noun: str, quality_tokens: tuple[str, ...] | list[str],
            default_negative: str) -> FinalPrompt:
    """The final prompt and negative prompt for `prompt` rendered in `style`."""
    subject_prompt = fill_subject(prompt, token, class_noun)
    styled = style.apply(subject_prompt)
    return FinalPrompt(
        prompt=merge_phrases(styled, ", ".join(quality_tokens)),
        negative=merge_phrases(style.negative, default_negative),
    )


def token_overflow(tokenizer, text: str) -> str:
    """The part of `text` beyond the tokenizer's window (77 tokens for CLIP, start and end included); "" if it fits."""
    ids = tokenizer(text, add_special_tokens=False, truncation=False).input_ids
    room = tokenizer.model_max_length - 2  # the start- and end-of-text tokens take two places
    if len(ids) <= room:
        return ""
    return tokenizer.decode(ids[room:]).strip()
