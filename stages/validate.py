"""Stage 1, validate: check the subject photos and write the manifest the rest of the pipeline trains on.

Outputs `data/validated/manifest.parquet` (only when every file is usable) and `report.json` (always: what
was accepted, rejected and why). A rejected run prints one `<file>: <reason>` line per problem, exits 1,
and leaves the previous manifest untouched. Relative to the workspace (the photos: to the current directory).
"""

from __future__ import annotations

import io
import json
import logging
import sys

from boothline.entry import run_stage
from boothline.errors import StageError
from boothline.io.files import atomic_write_bytes, atomic_write_text
from boothline.params import Params
from boothline.paths import Workspace
from boothline.photos.folder import check_folder

MIN_IMAGES = 3
log = logging.getLogger(__name__)


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    subject = params.subject
    check = check_folder(subject.instance_dir, min_side=params.train.resolution, allow_upscale=subject.allow_upscale,
                         min_images=MIN_IMAGES, max_images=subject.max_images)
    report = check.report()
    atomic_write_text(workspace.validated_dir / "report.json", json.dumps(report, indent=2) + "\n")
    for file, reason in check.warnings.items():
        print(f"warning: {file}: {reason}", file=sys.stderr)
    if check.rejected:
        raise StageError("\n".join(f"{file}: {reason}" for file, reason in check.rejected.items()))
    buf = io.BytesIO()
    check.manifest.to_parquet(buf, index=False)
    atomic_write_bytes(workspace.validated_manifest, buf.getvalue())
    log.info("%d images accepted from %s", len(check.manifest), subject.instance_dir)
    return {"accepted": len(check.manifest), "warnings": len(check.warnings)}


def main() -> None:
    sys.exit(run_stage("validate", run))


if __name__ == "__main__":
    main()
