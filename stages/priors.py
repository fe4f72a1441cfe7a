"""Stage 2, priors: class-prior images for prior preservation ("a photo of a toy"), cached and resumable
(`boothline.training.priors` says how: seeded, named by what shapes them, reused when already there).

Inputs: the model and `priors.*` params, and optionally the user's `priors.class_dir`. Output: `data/priors/`
under the workspace: the PNGs and `manifest.parquet` (file, sha256, seed, prompt, ...).
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
