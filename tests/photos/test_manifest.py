"""A manifest is read back hash-checked: training and evaluation never use a photo that changed or vanished
since the stage that listed it."""

from __future__ import annotations

import pytest

from boothline.errors import StageError
from boothline.paths import Workspace
from boothline.photos.manifest import read_manifest
from stages import validate


def test_a_validated_manifest_reads_back_its_images_and_hashes(params):
    validate.run(params())
    images = read_manifest(Workspace().validated_manifest, "validate")
    assert len(images.images) == len(images.sha256) == 5
    assert all(image.mode == "RGB" for image in images.images)


def test_a_changed_or_missing_photo_is_named(params, workdir):
    validate.run(params())
    photos = sorted((workdir / "data/subjects/demo").iterdir())
    photos[0].write_bytes(photos[1].read_bytes())
    photos[2].unlink()
    with pytest.raises(StageError) as err:
        read_manifest(Workspace().validated_manifest, "validate")
    message = str(err.value)
    assert "toy-1.png: changed since" in message and "toy-3.png: listed in" in message and "but missing" in message


def test_no_manifest_says_which_stage_writes_it(workdir):
    with pytest.raises(StageError, match=r"not found; run `python -m stages.priors` first"):
        read_manifest(Workspace(workdir / "elsewhere").priors_manifest, "priors")
