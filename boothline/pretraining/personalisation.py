"""Measuring DreamBooth on the world (the benchmark and the learning test; the stages never use it).

- identity: an image shows the demo robot when the identity encoder's nearest neighbour among the demo
  photos and renders of `others` other toy designs (held-out designs, the plain backdrop) is a demo photo;
- context kept: the world CLIP names an image's prompted context among every context (and none), from
  captions "a <class> <context phrase>";
- prior preservation: the share of "a photo of a <class>" images identified as the demo robot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from boothline.world.designs import Scene, pretraining_design, random_pose
from boothline.world.render import render
from boothline.world.vocabulary import CONTEXTS


def other_toys(count: int = 50, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng([seed, 51])
    return [render(Scene(pretraining_design(rng, "toy", held_out=True), **random_pose(rng)), 128) for _ in range(count)]


def embed(encoder, images: Sequence[Image.Image]) -> torch.Tensor:
    return torch.nn.functional.normalize(encoder.embed_images(list(images)), dim=-1)


def identified_as_subject(dino, images: Sequence[Image.Image], subject_photos: Sequence[Image.Image],
                          others: Sequence[Image.Image]) -> list[bool]:
    """Per image: is its nearest neighbour (identity embedding, cosine) one of the subject's photos?"""
    gallery = embed(dino, [*subject_photos, *others])
    nearest = (embed(dino, images) @ gallery.T).argmax(dim=1)
    return [int(i) < len(subject_photos) for i in nearest]


def context_named(clip, images: Sequence[Image.Image], class_noun: str, contexts: Sequence[str]) -> list[str | None]:
    """Per image, the context phrase the world CLIP picks for it (None: no context, the plain backdrop)."""
    choices = [None, *CONTEXTS.values()]
    texts = clip.embed_texts([f"a {class_noun}" if c is None else f"a {class_noun} {c}" for c in choices])
    scores = embed(clip, images) @ torch.nn.functional.normalize(texts, dim=-1).T
    return [choices[int(i)] for i in scores.argmax(dim=1)]


def context_of_prompt(prompt: str) -> str | None:
    """The world context a prompt names ("a sks toy on the beach" -> "on the beach"), if any."""
    for phrase in sorted(CONTEXTS.values(), key=len, reverse=True):
        if prompt.endswith(phrase):
            return phrase
    return None


def load_photos(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


def measure(pipe, params, prompts, dino, clip, subject_photos, others, seeds: Sequence[int],
            class_seeds: Sequence[int], steps: int, guidance: float, batch_size: int = 8) -> dict:
    """Identity, context kept and prior preservation of one pipeline on the evaluation prompts (EvalPrompt)."""
    from boothline.pipelines.sampling import Request, render

    size = params.train.resolution

    def draw(texts: Sequence[str], seed_list: Sequence[int]) -> list[Image.Image]:
        requests = [Request(t, s, "", steps, guidance, size, size) for t in texts for s in seed_list]
        return [image for _, image in render(pipe, requests, batch_size)]

    images = draw([p.prompt for p in prompts], seeds)
    identity = identified_as_subject(dino, images, subject_photos, others)
    per_image = [p for p in prompts for _ in seeds]
    contexts = [(i, context_of_prompt(p.text_prompt)) for i, p in enumerate(per_image)]
    contexts = [(i, c) for i, c in contexts if c is not None]
    named = context_named(clip, [images[i] for i, _ in contexts], params.subject.class_noun, list(CONTEXTS.values()))
    class_images = draw([params.class_prompt], class_seeds)
    return {
        "identity": float(np.mean(identity)),
        "context_kept": float(np.mean([n == c for (_, c), n in zip(contexts, named)])) if contexts else None,
        "prior_identified_as_subject": float(np.mean(identified_as_subject(dino, class_images, subject_photos,
                                                                          others))),
        "images": len(images), "context_images": len(contexts), "class_images": len(class_images),
    }, images
