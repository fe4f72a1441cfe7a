"""The built-in pretrained models: `pretrained/` in the checkout, checked against its sha256 manifest.

`make pretrain` (pretrain/dvc.yaml) writes them into one folder, `pretrained/world/`: the world pipeline
(`builtin:world`, a diffusers StableDiffusionPipeline directory) with the world CLIP (`builtin:world-clip`,
its `clip/` subfolder) and the identity encoder (`builtin:world-identity`, in DINO's role, `identity/`)
beside the pipeline's own subfolders (diffusers loads only those `model_index.json` names), and
`pretrained/manifest.json` listing the sha256 of every file. A name
resolves to its directory only after every file of the manifest matches, so a corrupted or half-updated
checkout fails with the file named instead of drawing noise. The manifest's own hash identifies the
weights in model ids, so priors, image ids and resume fingerprints change when the weights do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from boothline.errors import ModelError

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"
MANIFEST = "manifest.json"
WORLD, WORLD_CLIP, WORLD_IDENTITY = "builtin:world", "builtin:world-clip", "builtin:world-identity"
WEIGHTS_DIR = "world"  # the one folder of shipped weights; the manifest sits beside it (see dvc.yaml)
BUILTIN_DIRS = {WORLD: WEIGHTS_DIR, WORLD_CLIP: f"{WEIGHTS_DIR}/clip", WORLD_IDENTITY: f"{WEIGHTS_DIR}/identity"}
_verified: dict[Path, tuple] = {}  # manifest path -> (its stat) at the last check, per process


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: Path) -> Path:
    """List the sha256 of every file under `root` (except the manifest) in `root/manifest.json`."""
    files = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    manifest = root / MANIFEST
    manifest.write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    return manifest


def manifest_hash(root: Path | None = None) -> str:
    """16 hex digits naming these weights: the sha256 of the manifest, which lists every file's sha256."""
    root = root or PRETRAINED_DIR
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise ModelError(f"{manifest}: missing; the built-in models ship with it (restore it with `git checkout "
                         f"{root.name}`, or rebuild them with `make pretrain`)")
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]


def verify_pretrained(root: Path | None = None) -> None:
    """Every file of the manifest is there with its sha256, or a ModelError naming the first that is not."""
    root = root or PRETRAINED_DIR
    manifest_hash(root)
    manifest = root / MANIFEST
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in [manifest, *sorted(root.rglob("*.safetensors"))])
    if _verified.get(manifest) == stamp:
        return
    for name, expected in json.loads(manifest.read_text())["files"].items():
        path = root / name
        if not path.is_file():
            raise ModelError(f"{path}: missing from the built-in models (listed in {manifest}); restore it with "
                             f"`git checkout {root.name}` or rebuild with `make pretrain`")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelError(f"{path}: sha256 {actual[:12]}... does not match {manifest} ({expected[:12]}...); the "
                             f"file is damaged or was replaced: restore it with `git checkout {root.name}`, or rebuild "
                             f"with `make pretrain`")
    _verified[manifest] = stamp


def listed_sha256(path: Path, root: Path | None = None) -> str | None:
    """The manifest's sha256 of a file of the built-in models (checked on load), None for any other file."""
    path, root = path.resolve(), (root or PRETRAINED_DIR).resolve()
    if root not in path.parents or not (root / MANIFEST).is_file():
        return None
    return json.loads((root / MANIFEST).read_text())["files"].get(path.relative_to(root).as_posix())


def builtin_dir(name: str, root: Path | None = None) -> Path:
    """The verified directory of a built-in pretrained model name."""
    root = root or PRETRAINED_DIR
    if name not in BUILTIN_DIRS:
        raise ModelError(f"{name}: not a built-in model (known: builtin:tiny, {', '.join(BUILTIN_DIRS)})")
    verify_pretrained(root)
    return root / BUILTIN_DIRS[name]
