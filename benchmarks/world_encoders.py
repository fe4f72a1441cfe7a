"""Scores a world CLIP and identity encoder on held-out renders, as the pretraining's evaluate stage does, but
for any trained pair: the fp32 stage outputs of an experiment (data/pretrain/clip, data/pretrain/identity)
before an export, or the shipped ones. Writes nothing; prints one JSON object.

Needs the rendered datasets (`python -m stages.pretrain.render`), then:

    .venv/bin/python benchmarks/world_encoders.py [--clip data/pretrain/clip] [--identity data/pretrain/identity]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # stdout is the JSON


def main() -> None:
    from boothline.pretraining.arrays import load_dataset
    from boothline.pretraining.evaluation import ZeroShot, identity_retrieval, scene_of, score_factors
    from boothline.world.captions import registry_entries

    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default="data/pretrain/clip", help="a CLIPModel dir, e.g. pretrained/world/clip")
    parser.add_argument("--identity", default="data/pretrain/identity", help="a ViTModel directory")
    parser.add_argument("--datasets", default="data/pretrain/datasets")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    datasets = Path(args.datasets)

    started = time.perf_counter()
    templates = {name: entry["prompt"] for name, entry in registry_entries().items()}
    images, items = load_dataset(datasets / "heldout")
    zero_shot = score_factors(ZeroShot(Path(args.clip), templates), images, [scene_of(r) for r in items.itertuples()])
    identity = identity_retrieval(Path(args.identity), datasets / "identity-heldout")
    print(json.dumps({"clip": args.clip, "identity": args.identity,
                      "clip_zero_shot_heldout": {factor: round(report["accuracy"], 4)
                                                 for factor, report in zero_shot.items()},
                      "identity_top1_heldout": round(identity["top1"], 4), "identity_designs": identity["designs"],
                      "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "machine": platform.machine()}, indent=1))


if __name__ == "__main__":
    main()
