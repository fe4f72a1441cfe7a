"""Stage 2, priors: class-prior images for prior preservation ("a photo of a toy"), cached and resumable.

Inputs: the base model (`model.*`), `priors.*` and `subject.class_noun`; optionally the user's own class
images in `priors.class_dir`, checked like the subject photos and topped up with generated ones.
Outputs, under the workspace: `data/priors/prior-<index>-<hash>.png` and `data/priors/manifest.parquet`
(file, sha256, seed, prompt, model id, scheduler, steps, guidance, size, source per image).

Image i comes from seed `priors.seed + i` and is named by everything that shapes it, so a rerun renders only
what is missing or changed (`boothline.training.priors`).
"""

from __future__ import annotations

import io
import logging
import sys

from boothline.entry import run_stage
from boothline.io.files import atomic_write_bytes
from boothline.params import Params
from boothline.paths import Workspace
from boothline.training.priors import class_images

log = logging.getLogger(__name__)


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    table, counts = class_images(params, workspace.priors_dir, workspace.priors_manifest)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    atomic_write_bytes(workspace.priors_manifest, buf.getvalue())
    log.info("%d class images listed in %s", counts["images"], workspace.priors_manifest)
    return counts


def main() -> None:
    sys.exit(run_stage("priors", run))


if __name__ == "__main__":
    main()
