"""How well DreamBooth personalises the built-in world model: identity, context kept, prior preservation.

Run after `make run` (or `dvc repro`), in the project directory or `--workspace DIR`:

    .venv/bin/python benchmarks/world_dreambooth.py [--seeds 4] [--class-seeds 32]

It renders the paper's prompts for the subject's kind (all 25) with the trained model (data/model) and the
base model, `--seeds` images each, and `--class-seeds` images of the class prompt, then measures them with
the world encoders (boothline.pretraining.personalisation). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # stdout is the JSON


def main() -> None:
    from boothline.evaluation.metrics import load_clip, load_dino
    from boothline.evaluation.protocol import eval_prompts
    from boothline.params import load_params
    from boothline.paths import Workspace
    from boothline.pipelines.loading import base_model_id, load_pipeline
    from boothline.pretraining.personalisation import load_photos, measure, other_toys

    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--workspace", default=".")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--class-seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="default: eval.steps")
    args = parser.parse_args()

    params = load_params(args.params)
    params = params.model_copy(update={"eval": params.eval.model_copy(update={"max_prompts": None})})
    workspace = Workspace(args.workspace)
    device = torch.device("cpu")
    dino = load_dino(params.eval.dino_model, device)
    clip = load_clip(params.eval.clip_model, device)
    photos = load_photos(Path(params.subject.instance_dir))
    others = other_toys(50)
    prompts = eval_prompts(params)
    steps = args.steps or params.eval.steps
    seeds = [params.eval.seed + k for k in range(args.seeds)]
    class_seeds = [10_000 + k for k in range(args.class_seeds)]
    results = {"device": platform.processor() or platform.machine(), "torch": torch.__version__,
               "base_model": base_model_id(params.model), "prompts": len(prompts), "seeds": args.seeds, "steps": steps,
               "guidance": params.eval.guidance}
    for label, source in (("trained", str(workspace.model_dir)), ("base", params.model.base)):
        pipe = load_pipeline(source, model=params.model, scheduler=params.model.scheduler)
        results[label], _ = measure(pipe, params, prompts, dino, clip, photos, others, seeds, class_seeds,
                                    steps, params.eval.guidance)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
