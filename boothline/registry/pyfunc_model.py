"""The registered model: a boothline DreamBooth model as an MLflow pyfunc, defined from code (no pickle).

`boothline.registry.store` logs this file as `python_model` with the model directory (the `data/model/` layout:
a full diffusers pipeline, or a LoRA adapter whose card names its base) as the artifact "pipeline", and
the boothline package as code. MLflow runs this file when it loads the model.

`predict(prompts, params)` takes a list of prompts (or a DataFrame with a `prompt` column) and returns one
PNG (bytes, with the AUTOMATIC1111 `parameters` chunk) per prompt. Optional params: negative_prompt,
seed (prompt i uses seed + i), steps, guidance, width and height (0: the training resolution), scheduler.
"""

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

PIPELINE_ARTIFACT = "pipeline"
DEFAULT_PARAMS = {"negative_prompt": "", "seed": 0, "steps": 25, "guidance": 7.5, "width": 0, "height": 0,
                  "scheduler": "dpm++"}
# A LoRA model trained on `builtin:tiny` rebuilds its base (seeded, identical) here, not in the caller's cwd.
TINY_CACHE = Path(tempfile.gettempdir()) / "boothline" / "tiny"
BATCH_SIZE = 4


def prompts_of(model_input) -> list[str]:
    """Prompt strings from a list, a string, a Series or a DataFrame (its `prompt` column, else its only one)."""
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        column = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
        return [str(p) for p in model_input[column]]
    return [str(p) for p in list(model_input)]


class DreamBoothModel(PythonModel):
    def load_context(self, context):
        from boothline.pipelines.loading import (load_pipeline, pick_device, pick_dtype, prepare_for_inference,
                                                 read_model_card)
        from boothline.params import Model

        directory = context.artifacts[PIPELINE_ARTIFACT]
        self.card = read_model_card(directory) or {}
        self.device = pick_device("auto")
        pipe = load_pipeline(directory, device=self.device, dtype=pick_dtype("auto", self.device),
                             scheduler=DEFAULT_PARAMS["scheduler"], tiny_dir=TINY_CACHE)
        self.pipe = prepare_for_inference(pipe, Model(), self.device)  # what suits the device it is served on
        self.scheduler = DEFAULT_PARAMS["scheduler"]
        self.resolution = int(self.card.get("resolution")
                              or self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)

    # Annotated with DataFrame (what MLflow passes after applying the signature) because MLflow infers no
    # schema from it: any other type hint would replace the explicit signature, and none draws a warning.
    # For the same reason this file has no `from __future__ import annotations`: MLflow reads the hint itself.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        from boothline.io.images import a1111_parameters, png_bytes
        from boothline.pipelines.loading import A1111_SAMPLER_NAMES, SCHEDULERS, make_scheduler
        from boothline.pipelines.sampling import Request, render

        p = {**DEFAULT_PARAMS, **(params or {})}
        if p["scheduler"] not in SCHEDULERS:
            raise ValueError(f"scheduler {p['scheduler']!r}: expected one of {', '.join(SCHEDULERS)}")
        if p["scheduler"] != self.scheduler:
            self.pipe.scheduler = make_scheduler(p["scheduler"], self.pipe.scheduler.config)
            self.scheduler = p["scheduler"]
        width, height = int(p["width"]) or self.resolution, int(p["height"]) or self.resolution
        requests = [Request(prompt, int(p["seed"]) + i, p["negative_prompt"], int(p["steps"]), float(p["guidance"]),
                            width, height) for i, prompt in enumerate(prompts_of(model_input))]
        fingerprint = str(self.card.get("fingerprint") or "unknown")
        return [
            png_bytes(image, a1111_parameters(
                r.prompt, r.negative_prompt, steps=r.steps, sampler=A1111_SAMPLER_NAMES[p["scheduler"]],
                cfg_scale=r.guidance, seed=r.seed, width=r.width, height=r.height, model_hash=fingerprint[:10],
                model_name=f"boothline-{fingerprint}"))
            for r, image in render(self.pipe, requests, BATCH_SIZE)
        ]


mlflow.models.set_model(DreamBoothModel())
