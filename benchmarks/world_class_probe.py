"""An experiment for issue 16: can a small network tell the world's classes apart in its renders at all?

The world CLIP names 21% of held-out classes (chance 17%), and a linear head on its vision tower's pooled
output, refined 3,000 steps (benchmarks/world_clip_refine.py), 26%. This trains a classifier of the class
alone from scratch on the same 60,000 scenes and scores it on the 1,000 held-out renders of designs it never
saw (all of them, and those without a style): `--arch vit` is the world CLIP's vision tower (patch 16, width
128, 4 layers) with a linear head on its pooled output, `--arch cnn` a small convolutional net. If the CNN
learns class where the ViT does not, the tower is what to change; if neither does, the renderer is.

With `--base-model DIR`, the trained classifier then judges the class in the base model's images of the
pretraining evaluation's grammar prompts (boothline.pretraining.evaluation, with the `evaluate` section of
`--params`: 100 prompts x 4 seeds, 25 steps): a second judge of whether the UNet draws the prompted class,
beside the world CLIP's.

Needs the rendered datasets (`python -m stages.pretrain.render`, 3 minutes on 2 cores), then:

    .venv/bin/python benchmarks/world_class_probe.py --arch cnn [--steps 2000] [--patch 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


def convolutional(classes: int) -> torch.nn.Module:
    def block(inputs: int, outputs: int) -> list[torch.nn.Module]:
        return [torch.nn.Conv2d(inputs, outputs, 3, padding=1), torch.nn.GroupNorm(8, outputs), torch.nn.SiLU(),
                torch.nn.MaxPool2d(2)]

    widths = (3, 16, 32, 64, 128)  # about 16M multiply-adds an image, as many as the patch-16 tower
    layers = [layer for a, b in zip(widths, widths[1:]) for layer in block(a, b)]
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(widths[-1], classes))


class VisionTowerClassifier(torch.nn.Module):
    def __init__(self, classes: int, patch: int):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        self.tower = CLIPVisionModel(CLIPVisionConfig(image_size=64, patch_size=patch, hidden_size=128,
                                                      intermediate_size=512, num_hidden_layers=4,
                                                      num_attention_heads=4))
        self.head = torch.nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tower(pixel_values=x).pooler_output)


def augmented(x: torch.Tensor, generator: torch.Generator, shift: int = 8) -> torch.Tensor:
    """Each image flipped left-right or not and moved by up to `shift` px (edges repeated): class stays."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (shift,) * 4, mode="replicate")
    dx, dy = torch.randint(2 * shift + 1, (2, len(x)), generator=generator)
    size = x.shape[-1]
    return torch.stack([p[:, y:y + size, x_:x_ + size] for p, x_, y in zip(padded, dx.tolist(), dy.tolist())])


def main() -> None:
    from boothline.pretraining.arrays import load_dataset, pixels
    from boothline.world.vocabulary import CLASSES

    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", choices=("cnn", "vit"), required=True)
    parser.add_argument("--patch", type=int, default=16, help="the ViT's patch size")
    parser.add_argument("--datasets", default="data/pretrain/datasets")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--score-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="random flips and shifts of up to 8 px")
    parser.add_argument("--base-model", help="a world pipeline directory, e.g. pretrained/world")
    parser.add_argument("--params", default="pretrain/params.yaml", help="its evaluate section sets the prompts")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    images, items = load_dataset(Path(args.datasets) / "scenes")
    heldout_images, heldout_items = load_dataset(Path(args.datasets) / "heldout")
    classes = sorted(CLASSES)
    labels = torch.from_numpy(pd.Categorical(items["noun"], categories=classes).codes.astype("int64"))
    heldout_labels = torch.from_numpy(pd.Categorical(heldout_items["noun"], categories=classes).codes.astype("int64"))
    unstyled = torch.from_numpy(heldout_items["style"].isna().to_numpy().copy())
    seen = torch.arange(min(1000, len(images)))  # training scenes, to tell not fitting from not generalising

    torch.manual_seed(args.seed)
    model = convolutional(len(classes)) if args.arch == "cnn" else VisionTowerClassifier(len(classes), args.patch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.learning_rate, total_steps=args.steps,
                                                   pct_start=0.05)
    generator = torch.Generator().manual_seed(args.seed)

    @torch.no_grad()
    def predictions(source: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
        model.eval()
        out = torch.cat([model(pixels(source[rows[i:i + 250].numpy()])).argmax(1) for i in range(0, len(rows), 250)])
        model.train()
        return out

    def score(step: int) -> dict:
        guessed = predictions(heldout_images, torch.arange(len(heldout_images)))
        right = guessed == heldout_labels
        return {"step": step, "heldout": round(float(right.float().mean()), 4),
                "heldout_unstyled": round(float(right[unstyled].float().mean()), 4),
                "training_scenes": round(float((predictions(images, seen) == labels[seen]).float().mean()), 4)}

    curve, training_seconds = [], 0.0
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        batch = torch.sort(torch.randint(len(images), (args.batch_size,), generator=generator)).values
        x = pixels(images[batch.numpy()])
        loss = F.cross_entropy(model(augmented(x, generator) if args.augment else x), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        training_seconds += time.perf_counter() - started
        if step % args.score_every == 0 or step == args.steps:
            curve.append(score(step) | {"loss": round(loss.item(), 4)})
            print(json.dumps(curve[-1]), file=sys.stderr, flush=True)
    judged = judge_base_model(Path(args.base_model), Path(args.params), lambda x: predictions(x, torch.arange(len(x))),
                              classes, heldout_images, heldout_labels.numpy()) if args.base_model else None
    print(json.dumps({"arch": args.arch, "augment": args.augment, "patch": args.patch if args.arch == "vit" else None, "classes": classes,
                      "base_model_class": judged, "parameters": sum(p.numel() for p in model.parameters()),
                      "steps": args.steps,
                      "batch_size": args.batch_size, "learning_rate": args.learning_rate, "curve": curve,
                      "chance": round(1 / len(classes), 4), "unstyled_heldout": int(unstyled.sum()),
                      "s_per_step": round(training_seconds / args.steps, 3), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "machine": platform.machine()}, indent=1))


def judge_base_model(pipeline_dir: Path, params: Path, predict, classes: list[str], heldout: np.ndarray,
                     heldout_truth: np.ndarray) -> dict:
    """The classifier on the base model's grammar images, and on the held-out renders after a round trip
    through the pipeline's VAE (what the UNet can draw at best, and a check that blur alone does not fool it)."""
    from diffusers import AutoencoderKL

    from boothline.pretraining.arrays import pixels
    from boothline.pretraining.evaluation import evaluate_settings, generate_from_grammar
    from boothline.pretraining.settings import load_pretrain_params
    from boothline.world.captions import registry_entries

    vae = AutoencoderKL.from_pretrained(pipeline_dir / "vae", torch_dtype=torch.float32).eval()
    with torch.no_grad():
        decoded = torch.cat([vae.decode(vae.encode(pixels(heldout[i:i + 100])).latent_dist.mean).sample
                             for i in range(0, len(heldout), 100)])
    round_trip = ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    through_vae = float((predict(round_trip).numpy() == heldout_truth).mean())

    templates = {name: entry["prompt"] for name, entry in registry_entries().items()}
    started = time.perf_counter()
    images, scenes, _ = generate_from_grammar(pipeline_dir, evaluate_settings(load_pretrain_params(params)), templates)
    generation_seconds = time.perf_counter() - started
    truth = np.array([classes.index(scene.design.noun) for scene in scenes])
    guessed = predict(images).numpy()
    right = guessed == truth
    unstyled = np.array([scene.style is None for scene in scenes])
    return {"accuracy": round(float(right.mean()), 4), "unstyled": round(float(right[unstyled].mean()), 4),
            "predicted": {classes[c]: int(n) for c, n in zip(*np.unique(guessed, return_counts=True))},
            "heldout_through_vae": round(through_vae, 4),
            "images": len(images), "unstyled_images": int(unstyled.sum()),
            "generation_s": round(generation_seconds, 1)}


if __name__ == "__main__":
    main()
