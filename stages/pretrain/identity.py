"""Pretraining stage 4, identity: the identity encoder in DINO's role (boothline.pretraining.identity),
trained on views of the identity designs. Output: `data_dir/identity` (ViTModel + ViTImageProcessor)."""

from __future__ import annotations

import sys

from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.identity import train_identity
from boothline.pretraining.settings import PretrainParams


def run(params: PretrainParams) -> None:
    train_identity(params.identity, params.dataset("identity"), params.work("identity"), params.trained("identity"))


def main() -> None:
    sys.exit(run_pretrain_stage("identity", run))


if __name__ == "__main__":
    main()
