"""Pretraining stage 6, export: the shipped folder (boothline.pretraining.export). Output: `out_dir`
(`pretrained/`: world/ in fp16, the pipeline with the encoders as its clip/ and identity/, and
manifest.json beside it), committed to git."""

from __future__ import annotations

import logging
import sys

from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.export import export_world
from boothline.pretraining.settings import PretrainParams

log = logging.getLogger(__name__)


def run(params: PretrainParams) -> None:
    out = export_world(params)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("%s: %.1f MB", out, size / 1e6)


def main() -> None:
    sys.exit(run_pretrain_stage("export", run))


if __name__ == "__main__":
    main()
