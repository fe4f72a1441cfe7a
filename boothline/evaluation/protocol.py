"""The DreamBooth paper's evaluation prompts: 25 per subject, chosen by the subject's kind.

Object subjects get 20 recontextualisation and 5 property-modification prompts; live subjects (pets)
get 10 recontextualisation, 10 accessorisation and 5 property-modification prompts (Ruiz et al. 2023,
the prompt lists published with the DreamBooth dataset). Each prompt is written twice:

- `prompt`, for generation, with the subject ("a sks dog in the jungle");
- `text_prompt`, for CLIP-T, with the subject token removed so only the class noun remains
  ("a dog in the jungle"), as the paper scores prompt fidelity.

A user may replace the list with `eval.prompts` (templates with {subject}, {token}, {class_noun}).
"""

from __future__ import annotations

from dataclasses import dataclass

from boothline.errors import StageError
from boothline.params import Params

RECONTEXTUALISATION = "recontextualisation"
ACCESSORISATION = "accessorisation"
PROPERTY = "property"
CUSTOM = "custom"

_SHARED_CONTEXTS = [
    "a {subject} in the jungle",
    "a {subject} in the snow",
    "a {subject} on the beach",
    "a {subject} on a cobblestone street",
    "a {subject} on top of pink fabric",
    "a {subject} on top of a wooden floor",
    "a {subject} with a city in the background",
    "a {subject} with a mountain in the background",
    "a {subject} with a blue house in the background",
    "a {subject} on top of a purple rug in a forest",
]
_OBJECT_CONTEXTS = [
    "a {subject} with a wheat field in the background",
    "a {subject} with a tree and autumn leaves in the background",
    "a {subject} with the Eiffel Tower in the background",
    "a {subject} floating on top of water",
    "a {subject} floating in an ocean of milk",
    "a {subject} on top of green grass with sunflowers around it",
    "a {subject} on top of a mirror",
    "a {subject} on top of the sidewalk in a crowded street",
    "a {subject} on top of a dirt road",
    "a {subject} on top of a white rug",
]
_ACCESSORIES = [
    "a {subject} wearing a red hat",
    "a {subject} wearing a santa hat",
    "a {subject} wearing a rainbow scarf",
    "a {subject} wearing a black top hat and a monocle",
    "a {subject} in a chef outfit",
    "a {subject} in a firefighter outfit",
    "a {subject} in a police outfit",
    "a {subject} wearing pink glasses",
    "a {subject} wearing a yellow shirt",
    "a {subject} in a purple wizard outfit",
]
_PROPERTIES = [
    "a red {subject}",
    "a purple {subject}",
    "a shiny {subject}",
    "a wet {subject}",
    "a cube shaped {subject}",
]

# (category, template) in the paper's order.
PAPER_PROMPTS: dict[str, list[tuple[str, str]]] = {
    "object": [(RECONTEXTUALISATION, t) for t in _SHARED_CONTEXTS + _OBJECT_CONTEXTS]
    + [(PROPERTY, t) for t in _PROPERTIES],
    "live": [(RECONTEXTUALISATION, t) for t in _SHARED_CONTEXTS]
    + [(ACCESSORISATION, t) for t in _ACCESSORIES]
    + [(PROPERTY, t) for t in _PROPERTIES],
}


@dataclass(frozen=True)
class EvalPrompt:
    category: str
    prompt: str  # with the subject token: what the model is asked to draw
    text_prompt: str  # the token removed: what CLIP-T compares the image with


def without_token(prompt: str, token: str) -> str:
    """"a sks dog on the beach" -> "a dog on the beach"."""
    return " ".join(word for word in prompt.split() if word != token)


def stratified(items: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """`count` of the (category, template) items: every category at least once when `count` allows, the
    rest in proportion to category size (largest remainder); evenly spaced within a category, in order."""
    categories = list(dict.fromkeys(category for category, _ in items))
    positions = {c: [i for i, (category, _) in enumerate(items) if category == c] for c in categories}
    exact = {c: count * len(positions[c]) / len(items) for c in categories}
    quota = {c: int(exact[c]) for c in categories}
    by_remainder = sorted(categories, key=lambda c: (quota[c] - exact[c], categories.index(c)))
    for c in by_remainder[: count - sum(quota.values())]:
        quota[c] += 1
    for c in categories:  # a small count would otherwise drop the small categories entirely
        if quota[c] == 0 and count >= len(categories):
            quota[max(categories, key=lambda k: quota[k])] -= 1
            quota[c] = 1
    chosen = sorted(positions[c][(k * len(positions[c])) // quota[c]] for c in categories for k in range(quota[c]))
    return [items[i] for i in chosen]


def eval_prompts(params: Params) -> list[EvalPrompt]:
    """The evaluation prompts for `params`: the user's list, or the paper's 25 for the subject's kind,
    cut to `eval.max_prompts` with every category kept in proportion."""
    subject = params.subject
    if params.eval.prompts is not None:
        templates = [(CUSTOM, t) for t in params.eval.prompts]
        if not templates:
            raise StageError("eval.prompts: is an empty list; remove the key to use the paper's 25 prompts")
        for i, (_, template) in enumerate(templates):
            if subject.token not in params.fill(template).split():
                raise StageError(
                    f"eval.prompts[{i}] = {template!r}: must name the subject, with {{subject}}, {{token}} "
                    f"or the token {subject.token!r}"
                )
    else:
        templates = PAPER_PROMPTS[subject.kind]
    limit = params.eval.max_prompts
    if limit is not None and limit < len(templates):
        templates = stratified(templates, limit)
    return [EvalPrompt(category, params.fill(t), without_token(params.fill(t), subject.token))
            for category, t in templates]
