"""What `--model` means: a local model directory, a built-in model, a hub id, or a registered MLflow model. Resolution
turns the value into something `boothline.pipelines.loading.load_pipeline` loads, plus the identity that image ids
and the history log record: the model card's training fingerprint and step, else the registry version, else the base
model id, else a hash of the weights. `models:/name@alias` and `models:/name/<version>` are downloaded once into the
workspace's `data/cache/registry/` (pinned to the version the alias pointed at). MLflow is imported only here,
inside the function that needs it: rendering never imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from boothline.errors import ModelError
from boothline.io.files import atomic_directory, atomic_write_text, sha256_file
from boothline.params import Params
from boothline.paths import HASH_CACHE, Workspace
from boothline.pipelines.builtin import listed_sha256
from boothline.pipelines.loading import BUILTIN_PIPELINES, HUB_ID, base_model_id, read_model_card, resolve_source

REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))")
PIPELINE_ARTIFACT_KEY = "pipeline"  # the registered pyfunc's artifact holding the model directory
UNET_WEIGHTS = "unet/diffusion_pytorch_model*.safetensors"
SHORT_HASH = 10  # hex digits, as AUTOMATIC1111 shows a model hash


@dataclass(frozen=True)
class ResolvedModel:
    uri: str  # reproducible reference: as given, or models:/name/<version> for an alias
    source: str  # what load_pipeline loads
    version: str  # identity recorded with every image
    base: str  # the base model it derives from
    name: str  # short display name (the A1111 "Model:" field)
    hash: str  # short sha256 of the UNet (or LoRA adapter) weights; "unknown" if not on disk


def default_model_value(params: Params, workspace: Workspace = Workspace()) -> str:
    """`generate.model` if set, else the trained model if there is one, else the base model."""
    if params.generate.model:
        return params.generate.model
    return str(workspace.model_dir) if workspace.model_dir.is_dir() else params.model.base


def resolve_model(value: str | None, params: Params, workspace: Workspace = Workspace()) -> ResolvedModel:
    value = value or default_model_value(params, workspace)
    if value.startswith("models:/"):
        source, uri, registry_version = download_registered(value, params, workspace)
    elif value.startswith(("runs:/", "mlflow-artifacts:")):
        raise ModelError(f"model {value}: use a registered model, models:/<name>@<alias> or models:/<name>/<version>")
    else:
        source, uri, registry_version = value, value, None

    is_base = value == params.model.base
    if not is_base and value not in BUILTIN_PIPELINES and not Path(source).exists() and not HUB_ID.fullmatch(source):
        raise ModelError(f"model {value}: no such model directory or file (nor a hub id 'org/name')")
    local = Path(resolve_source(source))
    card = read_model_card(local) if local.is_dir() else None
    weights = weights_file(source, card, params if is_base else None)
    digest = model_hash(*weights) if weights else "unknown"
    if card and card.get("fingerprint"):  # what trained it, and for how long: as the registry keys it
        version = str(card["fingerprint"]) + (f"@step-{card['step']}" if card.get("step") is not None else "")
    elif registry_version:
        version = registry_version
    elif is_base:
        version = base_model_id(params.model)
    else:
        version = f"sha256:{digest}" if weights else value
    base = str((card or {}).get("base_id") or (card or {}).get("base") or base_model_id(params.model))
    return ResolvedModel(uri=uri, source=source, version=version, base=base, name=display_name(value), hash=digest)


def display_name(value: str) -> str:
    match = REGISTERED.fullmatch(value)
    if match:
        return match["name"]
    if value in BUILTIN_PIPELINES:
        return value.removeprefix("builtin:")
    return Path(value.rstrip("/")).name or value


def download_registered(uri: str, params: Params, workspace: Workspace) -> tuple[str, str, str]:
    """(local pipeline dir, pinned models:/name/<version>, "name/v<version>") for a registered model."""
    match = REGISTERED.fullmatch(uri)
    if not match:
        raise ModelError(f"model {uri}: expected models:/<name>@<alias> or models:/<name>/<version>")
    import mlflow  # noqa: PLC0415 - only registry lookups pay for (and need) MLflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per file otherwise
    tracking_uri = workspace.tracking_uri(params.register.tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    name = match["name"]
    try:
        client = MlflowClient()
        found = (client.get_model_version_by_alias(name, match["alias"]) if match["alias"]
                 else client.get_model_version(name, match["version"]))
    except MlflowException as err:
        raise ModelError(f"model {uri}: not found in the registry at {tracking_uri} ({err.message})") from None
    pinned = f"models:/{name}/{found.version}"
    # Keyed by the version's run too: a recreated registry, or another tracking URI, numbers versions afresh.
    cache = workspace.registry_cache / name / f"v{found.version}-{(found.run_id or 'no-run')[:12]}"
    if not (cache / "MLmodel").is_file():
        with atomic_directory(cache) as tmp:
            downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=str(tmp)))
            if downloaded.resolve() != tmp.resolve() or not (tmp / "MLmodel").is_file():
                raise ModelError(f"model {uri}: version {found.version} is not an MLflow model directory")
    pipeline = cache / pipeline_artifact(cache / "MLmodel")
    if not (pipeline / "model_index.json").is_file() and not read_model_card(pipeline):
        raise ModelError(f"model {uri}: version {found.version} has no diffusers pipeline in its "
                         f"'{PIPELINE_ARTIFACT_KEY}' artifact ({pipeline})")
    return str(pipeline), pinned, f"{name}/v{found.version}"


def pipeline_artifact(mlmodel: Path) -> str:
    """Where the pyfunc keeps its `pipeline` artifact (artifacts/<name of the logged directory>)."""
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(PIPELINE_ARTIFACT_KEY) or {}
    return entry.get("path") or f"artifacts/{PIPELINE_ARTIFACT_KEY}"


def weights_file(source: str, card: dict | None, base_params: Params | None) -> tuple[Path, Path] | None:
    """(file, model root) of the file that identifies a model: its UNet weights, a LoRA adapter, or the
    single-file checkpoint itself."""
    local = Path(resolve_source(source)).absolute()
    if local.is_file():
        return local, local
    if local.is_dir():
        if card and card.get("kind") == "lora":
            adapter = local / card.get("weights", "pytorch_lora_weights.safetensors")
            return (adapter, local) if adapter.is_file() else None
        candidates = sorted(local.glob(UNET_WEIGHTS), key=lambda p: (len(p.name), p.name))
        return (candidates[0], local) if candidates else None
    if HUB_ID.fullmatch(source):  # a hub model already in the local cache (it was, or will be, loaded offline)
        from huggingface_hub import try_to_load_from_cache

        revision = base_params.model.revision if base_params else None
        cached = try_to_load_from_cache(source, "unet/diffusion_pytorch_model.safetensors", revision=revision)
        return (Path(cached), Path(cached).parent.parent) if isinstance(cached, str) else None
    return None


def model_hash(weights: Path, root: Path) -> str:
    """Short sha256 of a weights file, cached beside the model `root` keyed by size and mtime (for a model in
    the Hugging Face cache, under data/cache/: a file among its snapshots makes its cache scanner fail)."""
    if listed := listed_sha256(weights):  # a built-in model: its manifest has it (and nothing is written there)
        return listed[:SHORT_HASH]
    if root.parent.name == "snapshots":
        cache = HASH_CACHE / f"{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.sha256.json"
    else:
        cache = root.parent / f".{root.name}.sha256.json"
    stat = weights.stat()
    key = {"file": weights.relative_to(root).as_posix(), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        cached = json.loads(cache.read_text())
        if {k: cached.get(k) for k in key} == key:
            return cached["sha256"][:SHORT_HASH]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(weights)
    try:
        atomic_write_text(cache, json.dumps({**key, "sha256": digest}) + "\n")
    except OSError:  # a read-only model location: hash again next time rather than fail
        pass
    return digest[:SHORT_HASH]
