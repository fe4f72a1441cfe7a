"""Resolving --model: default choice, versions from model cards, cached weight hashes, registered MLflow models."""

import json
import shutil
import subprocess
import sys

import pytest

from boothline.errors import ModelError
from boothline.generation import model_uri
from boothline.generation.model_uri import resolve_model
from boothline.pipelines.loading import base_model_id
from conftest import REPO


def test_default_is_the_trained_model_when_there_is_one(params, workdir):
    p = params()
    base = resolve_model(None, p)
    tiny = base_model_id(p.model)  # builtin:tiny@v<builder version>
    assert (base.uri, base.version, base.name, base.base) == ("builtin:tiny", tiny, "tiny", tiny)

    shutil.copytree(workdir / "data/base/tiny", workdir / "data/model")
    (workdir / "data/model/boothline_model.json").write_text(json.dumps(
        {"kind": "full", "fingerprint": "fp-1234", "step": 100, "base": "builtin:tiny", "base_id": tiny}))
    trained = resolve_model(None, p)
    assert (trained.uri, trained.source, trained.version, trained.base) == ("data/model", "data/model",
                                                                            "fp-1234@step-100", tiny)
    assert trained.hash == base.hash  # same UNet weights as the base it was copied from
    assert resolve_model("builtin:tiny", p).version == tiny  # an explicit --model wins


def test_lora_model_is_identified_by_its_adapter(params, workdir):
    lora = workdir / "lora"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"adapter weights")
    (lora / "boothline_model.json").write_text(json.dumps({"kind": "lora", "base": "builtin:tiny"}))
    resolved = resolve_model(str(lora), params())
    expected = __import__("hashlib").sha256(b"adapter weights").hexdigest()
    assert resolved.hash == expected[:10] and resolved.version == f"sha256:{expected[:10]}"


def test_model_hash_is_cached_beside_the_model_until_the_file_changes(params, workdir, monkeypatch):
    p = params()
    resolve_model(None, p)
    cache = workdir / "data/base/.tiny.sha256.json"
    assert json.loads(cache.read_text())["file"] == "unet/diffusion_pytorch_model.safetensors"
    calls = []
    real = model_uri.sha256_file
    monkeypatch.setattr(model_uri, "sha256_file", lambda path: calls.append(path) or real(path))
    first = resolve_model(None, p).hash
    assert calls == []  # hashed once, then read from the cache
    weights = workdir / "data/base/tiny/unet/diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same bytes, new mtime: hashed again
    assert resolve_model(None, p).hash == first and len(calls) == 1


def test_hashes_of_hub_models_stay_out_of_the_hugging_face_cache(workdir):
    snapshot = workdir / "hf/models--org--name/snapshots/0123abc"
    weights = snapshot / "unet/diffusion_pytorch_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    first = model_uri.model_hash(weights, snapshot)
    assert [p.name for p in snapshot.parent.iterdir()] == ["0123abc"]  # nothing beside the snapshot
    assert len(list((workdir / "data/cache/weight-hashes").glob("*.sha256.json"))) == 1
    assert model_uri.model_hash(weights, snapshot) == first


def test_missing_model_is_a_clear_error(params, workdir):
    with pytest.raises(ModelError, match="no-such-dir: no such model directory"):
        resolve_model(str(workdir / "no-such-dir"), params())
    with pytest.raises(ModelError, match="use a registered model"):
        resolve_model("runs:/abc/model", params())


REGISTER = """
import mlflow
from mlflow.pyfunc import PythonModel

class Pipeline(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input

mlflow.set_tracking_uri("sqlite:///registry/mlflow.db")
mlflow.set_registry_uri("sqlite:///registry/mlflow.db")
with mlflow.start_run():
    mlflow.pyfunc.log_model(name="model", python_model=Pipeline(), artifacts={"pipeline": "data/model"},
                            pip_requirements=[], registered_model_name="toys")
mlflow.MlflowClient().set_registered_model_alias("toys", "champion", "1")
"""


def test_registered_model_alias_is_downloaded_once_and_pinned(params, workdir):
    shutil.copytree(workdir / "data/base/tiny", workdir / "data/model")
    (workdir / "data/model/boothline_model.json").write_text(json.dumps({"kind": "full", "fingerprint": "fp-9"}))
    (workdir / "registry").mkdir()
    subprocess.run([sys.executable, "-c", REGISTER], cwd=workdir, check=True, capture_output=True,
                   env={"PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"})
    shutil.rmtree(workdir / "data/model")

    resolved = resolve_model("models:/toys@champion", params())
    assert resolved.uri == "models:/toys/1" and resolved.version == "fp-9" and resolved.name == "toys"
    assert (workdir / resolved.source / "model_index.json").is_file()
    assert resolved.source.startswith("data/cache/registry/toys/v1-")
    assert resolve_model("models:/toys/1", params()).source == resolved.source  # cached, not downloaded again
    with pytest.raises(ModelError, match="not found in the registry"):
        resolve_model("models:/toys@nobody", params())
