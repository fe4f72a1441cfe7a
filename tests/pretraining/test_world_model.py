"""The shipped world model draws what it is asked: styles it learnt are recognised on a contact sheet that
`boothline generate` makes, and the base model never draws the held-out demo robot."""

from __future__ import annotations

import json

import pytest
import torch

from boothline.pipelines.builtin import PRETRAINED_DIR

pytestmark = pytest.mark.skipif(not (PRETRAINED_DIR / "manifest.json").is_file(),
                                reason="no shipped weights in this checkout (make pretrain)")


@pytest.mark.xfail(reason="issue 16's target, not reached yet: the previous weights named 10 of the 26 styles "
                          "on this sheet (WORLD.md)", strict=False)
def test_the_world_clip_recognises_the_styles_on_a_generated_contact_sheet(workdir, capsys):
    from PIL import Image

    from boothline.cli import main
    from boothline.evaluation.metrics import load_clip
    from boothline.world.captions import apply_template, registry_entries
    from boothline.world.vocabulary import STYLES

    prompt = "a photo of a toy on the beach"
    assert main(["generate", "--model", "builtin:world", "--prompt", prompt, "--styles", ",".join(STYLES),
                 "--seeds", "1", "--steps", "20"]) == 0
    assert main(["history", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert sorted(r["style"] for r in rows) == sorted(STYLES)
    clip = load_clip("builtin:world-clip", torch.device("cpu"))
    from conftest import REPO

    templates = {name: entry["prompt"] for name, entry in registry_entries(REPO / "registry/styles.yaml").items()}
    candidates = [None, *STYLES]
    texts = clip.embed_texts([prompt if s is None else apply_template(templates[s], prompt) for s in candidates])
    images = clip.embed_images([Image.open(r["file"]).convert("RGB") for r in rows])
    named = [candidates[int(i)] for i in (torch.nn.functional.normalize(images, dim=-1)
                                           @ torch.nn.functional.normalize(texts, dim=-1).T).argmax(1)]
    recognised = [r["style"] for r, n in zip(rows, named) if n == r["style"]]
    print(f"{len(recognised)} of {len(rows)} styles recognised; missed:",
          sorted(set(STYLES) - set(recognised)))
    assert len(recognised) >= 0.8 * len(STYLES)


def test_the_base_model_rarely_draws_the_demo_robot(tmp_path):
    from conftest import REPO

    from boothline.evaluation.metrics import load_dino
    from boothline.params import Model
    from boothline.pipelines.loading import load_pipeline
    from boothline.pipelines.sampling import Request, render
    from boothline.pretraining.personalisation import identified_as_subject, load_photos, other_toys

    pipe = load_pipeline("builtin:world", model=Model(base="builtin:world"), scheduler="dpm++")
    requests = [Request("a photo of a toy", seed, "", 20, 7.5, 64, 64) for seed in range(16)]
    images = [image for _, image in render(pipe, requests, 8)]
    dino = load_dino("builtin:world-identity", torch.device("cpu"))
    share = sum(identified_as_subject(dino, images, load_photos(REPO / "data/subjects/demo"), other_toys(50)))
    assert share / len(images) <= 0.1
