"""Subject prompt templates: `{subject}`, `{token}` and `{class_noun}`, expanded the one way every stage uses."""

from __future__ import annotations

import re

from boothline.errors import PromptError

SUBJECT_PLACEHOLDERS = ("{subject}", "{token}", "{class_noun}")
BRACED = re.compile(r"\{[^{}]*\}")


def unknown_placeholders(template: str) -> list[str]:
    return sorted(set(BRACED.findall(template)) - set(SUBJECT_PLACEHOLDERS))


def fill_subject(template: str, token: str, class_noun: str) -> str:
    """Expand subject placeholders; a bare subject token also gets its class noun ("a sks" -> "a sks dog").

    Placing the class noun next to the token is what DreamBooth trained on, so the model recognises both.
    """
    unknown = unknown_placeholders(template)
    if unknown:
        raise PromptError(f"prompt {template!r}: unknown placeholder(s) {', '.join(unknown)} "
                          f"(known: {', '.join(SUBJECT_PLACEHOLDERS)})")
    text = template.replace("{subject}", token).replace("{token}", token).replace("{class_noun}", class_noun)
    bare_token = re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])(?!\s+{re.escape(class_noun)}\b)")
    return bare_token.sub(f"{token} {class_noun}", text)
