"""Pretraining stage 5, unet: the world UNet (boothline.pretraining.unet) on VAE latents of the captioned
scenes, conditioned on the frozen CLIP text tower. Resumable: a rerun continues from `data_dir/work/unet`.
Output: `data_dir/unet` (UNet2DConditionModel, its EMA weights)."""

from __future__ import annotations

import sys

from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.settings import PretrainParams
from boothline.pretraining.unet import train_unet


def run(params: PretrainParams) -> None:
    train_unet(params.unet, params.dataset("scenes"), params.trained("clip"), params.trained("vae"),
               params.work("unet"), params.trained("unet"))


def main() -> None:
    sys.exit(run_pretrain_stage("unet", run))


if __name__ == "__main__":
    main()
