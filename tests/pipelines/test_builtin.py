"""The built-in pretrained models: a sha256 manifest checked before anything loads, its hash in model ids."""

from __future__ import annotations

import json

import pytest

from boothline.errors import ModelError
from boothline.pipelines.builtin import (BUILTIN_DIRS, PRETRAINED_DIR, builtin_dir, listed_sha256, manifest_hash,
                                         verify_pretrained, write_manifest)


@pytest.fixture
def shipped(tmp_path):
    root = tmp_path / "pretrained"
    (root / "world" / "unet").mkdir(parents=True)
    (root / "world" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights" * 100)
    (root / "world" / "model_index.json").write_text("{}")
    (root / "world" / "clip").mkdir()
    (root / "world" / "clip" / "model.safetensors").write_bytes(b"clip")
    write_manifest(root)
    return root


def test_a_manifest_lists_every_file_with_its_sha256(shipped):
    files = json.loads((shipped / "manifest.json").read_text())["files"]
    assert sorted(files) == ["world/clip/model.safetensors", "world/model_index.json",
                             "world/unet/diffusion_pytorch_model.safetensors"]
    verify_pretrained(shipped)
    assert builtin_dir("builtin:world", shipped) == shipped / "world"
    assert builtin_dir("builtin:world-clip", shipped) == shipped / "world" / "clip"


def test_a_changed_file_is_an_error_naming_it(shipped):
    weights = shipped / "world" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"something else")
    with pytest.raises(ModelError, match=r"world/unet/diffusion_pytorch_model.safetensors: sha256 .* does not match"):
        builtin_dir("builtin:world", shipped)


def test_a_missing_file_or_manifest_is_an_error_naming_it(shipped):
    (shipped / "world" / "clip" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"world/clip/model.safetensors: missing"):
        verify_pretrained(shipped)
    (shipped / "manifest.json").unlink()
    with pytest.raises(ModelError, match=r"manifest.json: missing"):
        verify_pretrained(shipped)


def test_the_manifest_hash_changes_with_the_weights(shipped):
    before = manifest_hash(shipped)
    (shipped / "world" / "clip" / "model.safetensors").write_bytes(b"retrained")
    write_manifest(shipped)
    assert manifest_hash(shipped) != before and len(before) == 16


def test_a_listed_file_hash_comes_from_the_manifest(shipped, tmp_path):
    weights = shipped / "world" / "unet" / "diffusion_pytorch_model.safetensors"
    assert listed_sha256(weights, shipped) == json.loads((shipped / "manifest.json").read_text())["files"][
        "world/unet/diffusion_pytorch_model.safetensors"]
    assert listed_sha256(tmp_path / "elsewhere.safetensors", shipped) is None


def test_an_unknown_builtin_name_lists_the_known_ones():
    with pytest.raises(ModelError, match="builtin:world-clip"):
        builtin_dir("builtin:nothing")


@pytest.mark.skipif(not (PRETRAINED_DIR / "manifest.json").is_file(), reason="no shipped weights in this checkout")
def test_the_shipped_weights_match_their_manifest_and_budget():
    verify_pretrained()
    files = [p for p in PRETRAINED_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert all((PRETRAINED_DIR / sub).is_dir() for sub in BUILTIN_DIRS.values())
    assert sorted(p.name for p in PRETRAINED_DIR.iterdir()) == ["manifest.json", "world"]  # one weights folder
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".ckpt", ".pth")]  # safetensors only
