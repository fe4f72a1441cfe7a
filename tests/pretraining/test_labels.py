"""The auxiliary label heads: codes from the renderer's labels, a loss that trains them, checkpoints that carry them."""

from __future__ import annotations

import pandas as pd
import torch

from boothline.pretraining.labels import LabelHeads, WithHeads, label_codes
from boothline.pretraining.loop import Trainer

ITEMS = pd.DataFrame({"noun": ["toy", "dog", "toy", "cat"], "main": ["red", "red", "blue", "teal"],
                      "style": [None, "film-noir", "watercolor", None]})


def test_codes_give_missing_values_and_hidden_colours_their_own_class():
    codes = label_codes(ITEMS, ("noun", "main", "style"))
    nouns, n_nouns = codes["noun"]
    assert n_nouns == 3 and nouns[0] == nouns[2] != nouns[1]
    mains, n_mains = codes["main"]
    assert n_mains == 4  # blue, hidden (film-noir shows no colour), red, teal
    assert mains[0] != mains[1]  # the same red, but under film-noir it cannot be seen
    styles, n_styles = codes["style"]
    assert n_styles == 3 and styles[0] == styles[3]  # "none" twice


def test_the_heads_learn_the_labels_and_resume_with_the_encoder(tmp_path):
    torch.manual_seed(0)
    features = torch.randn(4, 8)
    model = WithHeads(torch.nn.Linear(8, 8), LabelHeads(8, label_codes(ITEMS, ("noun", "main"))))
    rows = torch.arange(4)
    before = model.heads.loss(model.encoder(features), rows).item()
    trainer = Trainer(model, tmp_path, steps=40, lr=3e-2, seed=0, warmup=1, checkpoint_every=40)
    trainer.run(lambda step, generator: model.heads.loss(model.encoder(features), rows))
    assert model.heads.loss(model.encoder(features), rows).item() < 0.2 * before
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert any(key.startswith("heads.heads.main") for key in saved) and "encoder.weight" in saved


def test_a_weighted_label_counts_that_many_times_the_others():
    torch.manual_seed(0)
    embedding, rows = torch.randn(4, 8), torch.arange(4)
    plain = LabelHeads(8, label_codes(ITEMS, ("noun", "main")))
    weighted = LabelHeads(8, label_codes(ITEMS, ("noun", "main")), {"noun": 3.0})
    weighted.load_state_dict(plain.state_dict())
    each = {column: torch.nn.functional.cross_entropy(head(embedding), plain.codes[column])
            for column, head in plain.heads.items()}
    assert torch.isclose(plain.loss(embedding, rows), (each["noun"] + each["main"]) / 2)
    assert torch.isclose(weighted.loss(embedding, rows), (3 * each["noun"] + each["main"]) / 4)
