"""Pretraining stage 3, vae: the world VAE (boothline.pretraining.vae), trained on crops of the captioned
scenes. Output: `data_dir/vae` (AutoencoderKL, its scaling factor measured)."""

from __future__ import annotations

import sys

from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.settings import PretrainParams
from boothline.pretraining.vae import train_vae


def run(params: PretrainParams) -> None:
    train_vae(params.vae, params.dataset("scenes"), params.work("vae"), params.trained("vae"))


def main() -> None:
    sys.exit(run_pretrain_stage("vae", run))


if __name__ == "__main__":
    main()
