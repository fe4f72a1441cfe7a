"""Pretraining stage 2, clip: the world CLIP and its tokenizer (boothline.pretraining.clip), trained on the
captioned scenes. Output: `data_dir/clip` (CLIPModel + CLIPProcessor)."""

from __future__ import annotations

import sys

from boothline.pretraining.clip import train_clip
from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.settings import PretrainParams


def run(params: PretrainParams) -> None:
    train_clip(params.clip, params.dataset("scenes"), params.work("clip"), params.trained("clip"))


def main() -> None:
    sys.exit(run_pretrain_stage("clip", run))


if __name__ == "__main__":
    main()
