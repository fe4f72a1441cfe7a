"""Pretraining stage 1, render: the procedural world's datasets (boothline.pretraining.datasets).

Outputs under `data_dir/datasets/`: `scenes` (captioned, pretraining designs), `heldout` (captioned, held-out
designs), `identity` and `identity-heldout` (several views per design).
"""

from __future__ import annotations

import logging
import sys

from boothline.pretraining.datasets import render_dataset
from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.settings import PretrainParams

log = logging.getLogger(__name__)


def run(params: PretrainParams) -> None:
    r = params.render
    datasets = [("scenes", "captioned", r.images, 1), ("heldout", "captioned", r.heldout_images, 1),
                ("identity", "views", r.identity_designs, r.identity_views),
                ("identity-heldout", "views", r.identity_heldout_designs, r.identity_views)]
    for name, kind, count, views in datasets:
        out = render_dataset(params.dataset(name), kind, r.seed, name, count, r.workers, views=views)
        log.info("%s: %d images in %s", name, count * views, out)


def main() -> None:
    sys.exit(run_pretrain_stage("render", run))


if __name__ == "__main__":
    main()
