"""MLflow registration against a real sqlite store: the gate (promote, refuse on a threshold, refuse when
worse than the champion), version tags, idempotency lookups and the logged pyfunc's layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from boothline.registry import store as registry
from boothline.registry.store import CANDIDATE, CHAMPION, Submission, decide


@pytest.fixture
def client(store):
    return registry.connect(store)


def version_with_metrics(client, name: str, metrics: dict[str, float], key: str):
    """A registered version whose run holds `metrics` as eval.* (the gate reads nothing else)."""
    import mlflow

    experiment = registry.experiment_id(client, "gate", "registry/artifacts", client.tracking_uri)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_metrics({f"eval.{k}": v for k, v in metrics.items()})
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                          tags={registry.MODEL_KEY_TAG: key})
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    return version


def gate(client, version, metrics, thresholds=None):
    return registry.apply_gate(client, "m", version, metrics, thresholds or {}, "latent_fidelity")


def tags(client, version) -> dict[str, str]:
    return client.get_model_version("m", version.version).tags


def test_gate_promotes_then_refuses_worse_and_failing_versions(client):
    v1 = version_with_metrics(client, "m", {"latent_fidelity": 0.10}, "a@step-1")
    first = gate(client, v1, {"latent_fidelity": 0.10})
    assert first.promoted and first.reasons == ["there is no champion yet"]
    assert client.get_model_version_by_alias("m", CHAMPION).version == v1.version
    assert tags(client, v1)[registry.PROMOTED_TAG] == "true"

    v2 = version_with_metrics(client, "m", {"latent_fidelity": 0.05}, "b@step-1")
    worse = gate(client, v2, {"latent_fidelity": 0.05})
    assert not worse.promoted
    assert "worse than champion version 1's 0.1" in worse.reasons[-1]
    assert client.get_model_version_by_alias("m", CHAMPION).version == v1.version
    assert client.get_model_version_by_alias("m", CANDIDATE).version == v2.version
    assert tags(client, v2)[registry.PROMOTED_TAG] == "false"
    assert "worse than champion" in tags(client, v2)[registry.REASONS_TAG]

    v3 = version_with_metrics(client, "m", {"latent_fidelity": 0.30}, "c@step-1")
    refused = gate(client, v3, {"latent_fidelity": 0.30, "dino": None, "dino_reason": "eval.dino_model is not set"},
                   thresholds={"dino": 0.5, "latent_fidelity": 0.2})
    assert not refused.promoted
    assert refused.reasons[0].startswith("dino is null (eval.dino_model is not set): cannot check dino >= 0.5")
    assert refused.reasons[1] == "latent_fidelity = 0.3 meets latent_fidelity >= 0.2"
    assert client.get_model_version_by_alias("m", CHAMPION).version == v1.version

    better = gate(client, v3, {"latent_fidelity": 0.30}, thresholds={"latent_fidelity": 0.2})
    assert better.promoted and "not worse than champion version 1's 0.1" in better.reasons[-1]
    assert client.get_model_version_by_alias("m", CHAMPION).version == v3.version
    assert sorted(client.get_model_version("m", v3.version).aliases) == [CANDIDATE, CHAMPION]


def test_decide_rules():
    ok = decide({"latent_fidelity": 0.2, "pres": 0.3}, {"pres": 0.5}, "latent_fidelity", 3, 2, 0.2)
    assert ok.promoted  # pres is lower-is-better: 0.3 <= 0.5 passes; equal to the champion is not worse
    assert ok.reasons[0] == "pres = 0.3 meets pres <= 0.5"
    assert not decide({"latent_fidelity": 0.2, "pres": 0.6}, {"pres": 0.5}, "latent_fidelity", 3, None, None).promoted
    null_primary = decide({"latent_fidelity": None, "latent_fidelity_reason": "x"}, {}, "latent_fidelity", 1, None, None)
    assert not null_primary.promoted and null_primary.reasons == ["primary metric latent_fidelity is null (x)"]
    lower_pres = decide({"pres": 0.4}, {}, "pres", 2, 1, 0.5)
    assert lower_pres.promoted  # for pres, lower than the champion is better
    assert not decide({"pres": 0.6}, {}, "pres", 2, 1, 0.5).promoted
    assert decide({"latent_fidelity": 0.1}, {}, "latent_fidelity", 4, 4, 0.9).reasons == [
        "version 4 is already the champion"]
    assert decide({"latent_fidelity": 0.1}, {}, "latent_fidelity", 5, 4, None).promoted
    failing_champion = decide({"latent_fidelity": 0.1}, {"latent_fidelity": 0.5}, "latent_fidelity", 4, 4, 0.1)
    assert not failing_champion.promoted and failing_champion.reasons[-1].startswith(
        "version 4 stays the champion: the gate only promotes")


def test_find_version_matches_the_model_key_only(client):
    assert registry.find_version(client, "m", "a@step-1") is None  # no such model yet
    v1 = version_with_metrics(client, "m", {"latent_fidelity": 0.1}, "a@step-1")
    version_with_metrics(client, "m", {"latent_fidelity": 0.1}, "a@step-2")
    assert registry.find_version(client, "m", "a@step-1").version == v1.version
    assert registry.find_version(client, "m", "b@step-1") is None


def test_logged_model_carries_the_pipeline_code_requirements_and_signature(client, tiny_dir):
    import mlflow
    import yaml

    model_dir = Path(shutil.copytree(tiny_dir, "data/model"))
    (model_dir / "boothline_model.json").write_text(json.dumps({"kind": "full", "step": 1, "fingerprint": "f"}))
    Path("data/eval").mkdir(parents=True)
    Path("data/eval/metrics.json").write_text("{}")
    experiment = registry.experiment_id(client, "boothline", "registry/artifacts", client.tracking_uri)
    sub = Submission(model_key="f@step-1", params={"train.learning_rate": "0.0001"}, metrics={"eval.latent_fidelity": 0.5},
                     histories={"train.loss": [(1, 2.0), (2, 1.5)]}, artifacts=[("eval", Path("data/eval"))],
                     tags={"base_model": "builtin:tiny@v1"}, version_tags={"boothline.step": "1"}, run_name="r")
    version = registry.log_and_register(client, experiment, "m", model_dir, sub)
    assert (int(version.version), version.aliases) == (1, [CANDIDATE])
    assert version.tags[registry.MODEL_KEY_TAG] == "f@step-1" and version.tags["boothline.step"] == "1"

    run = client.get_run(version.run_id)
    assert run.data.params["train.learning_rate"] == "0.0001"
    assert run.data.metrics["eval.latent_fidelity"] == 0.5
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train.loss")] == [2.0, 1.5]
    assert run.data.tags["base_model"] == "builtin:tiny@v1"
    assert Path(run.info.artifact_uri.removeprefix("file://")).resolve().is_relative_to(Path("registry/artifacts").resolve())

    local = Path(mlflow.artifacts.download_artifacts(f"models:/m@{CANDIDATE}"))
    assert (local / "artifacts/pipeline/model_index.json").is_file()
    assert (local / "artifacts/pipeline/boothline_model.json").is_file()
    assert (local / "code/boothline/pipelines/loading.py").is_file() and not list(local.glob("code/**/__pycache__"))
    requirements = (local / "requirements.txt").read_text().split()
    assert "torch>=2.3" in requirements and any(r.startswith("diffusers==") for r in requirements)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert mlmodel["is_signature_from_type_hint"] is False
    params = [p["name"] for p in json.loads(mlmodel["signature"]["params"])]
    assert params == ["negative_prompt", "seed", "steps", "guidance", "width", "height", "scheduler"]
    assert not list(Path("data").glob(".register-*"))  # the hard-linked staging copy is gone
