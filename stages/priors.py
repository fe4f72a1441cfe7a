"""Stage 2, priors: class-prior images for prior preservation ("a photo of a toy"), cached and resumable.

Image i is rendered from seed `priors.seed + i`, and its file name carries a hash of everything that
shapes it (model, prompts, seed, steps, guidance, scheduler, size). So a rerun reuses every image that is
already there, a killed run (each PNG is written atomically) renders only what is missing, and changing
the model or prompt renders anew. Files the current params no longer produce are deleted.
A user may supply class images instead (`priors.class_dir`); they are checked like the subject photos and
topped up with generated ones when there are too few.

Output: `data/priors/` under the workspace: the PNGs and `manifest.parquet` (file, sha256, seed, prompt, ...).
"""

from __future__ import annotations

import io
import sys

from boothline.entry import run_stage
from boothline.io.files import atomic_write_bytes
from boothline.params import Params
from boothline.paths import Workspace
from boothline.training.priors import class_images


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    table, counts = class_images(params, workspace.priors_dir, workspace.priors_manifest)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    atomic_write_bytes(workspace.priors_manifest, buf.getvalue())
    return counts


def main() -> None:
    sys.exit(run_stage("priors", run))


if __name__ == "__main__":
    main()
