"""The identity encoder, in DINO's role: a `transformers.ViTModel` whose CLS embedding keeps one design
close to itself across contexts, styles, poses, properties and accessories, and far from other designs.

Training: each step takes `designs_per_batch` designs of the identity dataset and two of their (four)
rendered views; the loss is InfoNCE (NT-Xent, SimCLR's) over the 2B unit-length CLS embeddings, with the
other view of the same design as the one positive and the 2B - 2 views of other designs as negatives. No
projection head: the embedding the evaluation reads (the CLS token, as with DINO) is the one trained.
Beside it, linear heads on the same CLS token (before normalising) classify the design's attributes (class,
shape variant, main, part and accent colour, pattern, emblem; boothline.pretraining.labels), weighted
`label_weight`: what makes one design another is then what the embedding separates first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from boothline.pretraining.arrays import load_dataset, pixels
from boothline.pretraining.labels import LabelHeads, WithHeads, label_codes
from boothline.pretraining.loop import Trainer, save_atomically
from boothline.pretraining.settings import Identity

LABELS = ("noun", "variant", "main", "part", "accent", "pattern", "emblem")


def build_identity(settings: Identity):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(settings.seed)
    config = ViTConfig(image_size=64, patch_size=settings.patch, hidden_size=settings.hidden,
                       intermediate_size=4 * settings.hidden, num_hidden_layers=settings.layers,
                       num_attention_heads=settings.heads)
    return ViTModel(config, add_pooling_layer=False)


def identity_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def cls_token(model, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=x).last_hidden_state[:, 0]


def embed(model, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(cls_token(model, x), dim=-1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    z = torch.cat([a, b])
    n = len(a)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def train_identity(settings: Identity, views_dir: Path, work_dir: Path, out_dir: Path) -> Path:
    model = build_identity(settings)
    images, items = load_dataset(views_dir)
    views = int(items["view"].max()) + 1
    designs = len(items) // views
    both = WithHeads(model, LabelHeads(settings.hidden, label_codes(items, LABELS)))

    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        chosen = torch.randperm(designs, generator=generator)[: settings.designs_per_batch]
        pair = torch.stack([torch.randperm(views, generator=generator)[:2] for _ in chosen])
        first = (chosen * views + pair[:, 0]).numpy()
        second = (chosen * views + pair[:, 1]).numpy()
        tokens = cls_token(model, pixels(np.concatenate([images[first], images[second]])))
        # The heads read the CLS token before normalising: on unit vectors their logits start near zero and
        # hardly move the encoder (a CLIP run with heads on its unit embeddings left class at chance).
        labelled = both.heads.loss(tokens, torch.from_numpy(np.concatenate([first, second])))
        a, b = F.normalize(tokens, dim=-1).chunk(2)
        return info_nce(a, b, settings.temperature) + settings.label_weight * labelled

    trainer = Trainer(both, work_dir, steps=settings.steps, lr=settings.learning_rate, seed=settings.seed,
                      fingerprint=f"{settings.model_dump_json()} labels={LABELS}")
    trained = trainer.run(loss).encoder
    processor = identity_processor()

    def save(tmp: Path) -> None:
        trained.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)

    return save_atomically(save, out_dir)
