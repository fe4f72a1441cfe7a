"""Stage 4, evaluate: the DreamBooth paper's protocol for the trained model, its checkpoints and the base model.

Every model renders the same prompts (`boothline.evaluation.protocol`) with the same seeds, so scores compare pair
by pair. Outputs under `data/eval/`:

- `metrics.json` (a DVC metric): dino, clip_i, clip_t, pres, div, latent_fidelity for the trained model,
  each null with `<key>_reason` when not computable; `baseline` (the base model, same keys); `steps`
  (the same block per scored training step) and `best_step` by `register.primary_metric`;
- `per_prompt.csv`: one row per model and prompt, with dino, clip_i, clip_t, div for that prompt's images
  and `latent_similarity` (encoder-free: mean cosine similarity of the VAE latents of its images to the
  subject images' latents, centred per channel as in `boothline.evaluation.fidelity`);
- `grids/<model>.png`: prompts x seeds; `plots/per_category.png`, `plots/per_step.png`.
"""

from __future__ import annotations

import logging
import sys
import time

from boothline.entry import run_stage
from boothline.evaluation.inputs import checkpoint_dirs, subject_images, trained_model_card
from boothline.evaluation.protocol import eval_prompts
from boothline.evaluation.report import write_report
from boothline.evaluation.scoring import score_models
from boothline.params import Params
from boothline.paths import Workspace

log = logging.getLogger(__name__)


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    started = time.perf_counter()
    card = trained_model_card(workspace.model_dir)  # every input is checked before any model loads
    checkpoints = checkpoint_dirs(params, card, workspace)
    prompts = eval_prompts(params)
    images = subject_images(workspace.validated_manifest)

    scored, baseline = score_models(params, workspace, card, checkpoints, prompts, images)
    report = write_report(params, workspace, card, prompts, scored, baseline)
    seconds = round(time.perf_counter() - started, 2)
    log.info("latent_fidelity %s (base %s), best step %s; %s s; results in %s", report["latent_fidelity"],
             baseline.get("latent_fidelity"), report["best_step"], seconds, workspace.eval_metrics)
    return {"latent_fidelity": report["latent_fidelity"], "best_step": report["best_step"], "wall_time_s": seconds}


def main() -> None:
    sys.exit(run_stage("evaluate", run))


if __name__ == "__main__":
    main()
