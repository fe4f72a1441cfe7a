"""Rule-based, deterministic prompt enhancement: the exact text each image is rendered from.

prompt --subject--> "a photo of sks dog" --style--> "oil painting of a photo of sks dog, impasto, ..."
       --quality tokens--> "..., high quality, detailed" --duplicate phrases removed--> final prompt.
The negative prompt is the style's merged with the default one. Nothing here depends on the model except
`token_overflow`, which reports what a tokenizer's 77-token window would cut off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from boothline.entry import StageError
from boothline.styles import Style

SUBJECT_PLACEHOLDERS = ("{subject}", "{token}", "{class_noun}")
BRACED = re.compile(r"\{[^{}]*\}")


class PromptError(StageError):
    """A prompt that cannot be expanded (an unknown `{placeholder}`)."""


@dataclass(frozen=True)
class FinalPrompt:
    prompt: str
    negative: str


def fill_subject(prompt: str, token: str, class_noun: str) -> str:
    """Expand subject placeholders; a bare subject token also gets its class noun ("a sks" -> "a sks dog").

    Placing the class noun next to the token is what DreamBooth trained on, so the model recognises both.
    """
    unknown = sorted(set(BRACED.findall(prompt)) - set(SUBJECT_PLACEHOLDERS))
    if unknown:
        raise PromptError(f"prompt {prompt!r}: unknown placeholder(s) {', '.join(unknown)} "
                          f"(known: {', '.join(SUBJECT_PLACEHOLDERS)})")
    text = prompt.replace("{subject}", token).replace("{token}", token).replace("{class_noun}", class_noun)
    bare_token = re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])(?!\s+{re.escape(class_noun)}\b)")
    return bare_token.sub(f"{token} {class_noun}", text)


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
