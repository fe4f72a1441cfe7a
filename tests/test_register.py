"""The register stage: what one run records, idempotency, the gate through params, the best checkpoint,
a fresh process loading registered models, and a real `mlflow server` on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from boothline.entry import run_stage
from boothline.evaluation.scoring import metric_block
from boothline.pipelines.loading import read_model_card
from conftest import free_port
from stages import register
from test_evaluate import TINY_ID, FAST_TRAIN, install_trained_model, train_project, trained_full  # noqa: F401

NO_ENCODER = "eval.dino_model is not set"


def write_evaluation(latent_fidelity: float, best_step: int | None = None) -> dict:
    """data/eval as the evaluate stage leaves it, for the model now in data/model."""
    card = read_model_card("data/model")
    block = metric_block({"latent_fidelity": latent_fidelity}, {k: NO_ENCODER for k in ("dino", "clip_i", "clip_t",
                                                                                          "pres", "div")})
    report = {**block, "baseline": {**metric_block({"latent_fidelity": 0.0}, {}), "model": TINY_ID},
              "steps": {str(card["step"]): block, **({str(best_step): metric_block(
                  {"latent_fidelity": latent_fidelity + 0.01}, {})} if best_step else {})},
              "best_step": best_step or card["step"],
              "best_metric": "latent_fidelity", "model": {k: card.get(k) for k in ("kind", "step", "fingerprint")}}
    Path("data/eval/grids").mkdir(parents=True, exist_ok=True)
    Path("data/eval/grids/model.png").write_bytes(b"\x89PNG not really")
    Path("data/eval/metrics.json").write_text(json.dumps(report))
    return report


def write_training_log() -> None:
    Path("data/train").mkdir(parents=True, exist_ok=True)
    Path("data/train/metrics.csv").write_text(
        "step,loss,instance_loss,prior_loss,lr,steps_per_s\n1,2.0,1.0,1.0,0.0001,1\n2,1.5,0.8,0.7,0.0001,3\n")
    Path("data/train/summary.json").write_text(json.dumps({"kind": "full", "final_loss": 1.5, "steps": 2,
                                                           "steps_per_s": 2.0}))


@pytest.fixture
def project(params, tiny_dir, store):
    """load(overrides, latent_fidelity) -> params of a project with a trained model and its evaluation."""

    def load(overrides: dict | None = None, latent_fidelity: float = 0.02, fingerprint: str = "f1"):
        install_trained_model(tiny_dir, fingerprint=fingerprint)
        write_evaluation(latent_fidelity)
        write_training_log()
        Path("dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train": {
            "cmd": "python -m stages.train", "outs": [{"path": "data/model", "hash": "md5", "md5": "abc123.dir"}]}}}))
        return params(overrides)

    return load


def registry_json() -> dict:
    return json.loads(Path("data/registry.json").read_text())


def test_first_registration_records_everything_and_becomes_champion(project):
    from mlflow import MlflowClient

    summary = register.run(project())
    record = registry_json()
    assert {"tracking_uri", "model_name", "version", "aliases", "promoted", "reasons"} <= set(record)
    assert (record["tracking_uri"], record["model_name"], record["version"]) == (
        "sqlite:///registry/mlflow.db", "boothline-demo", 1)
    assert (record["aliases"], record["promoted"]) == (["candidate", "champion"], True)
    assert record["reasons"] == ["there is no champion yet"]
    assert (record["alias_uri"], record["model_key"], record["new_version"]) == (
        "models:/boothline-demo@champion", "f1@step-100", True)
    assert summary["version"] == 1

    client = MlflowClient(f"sqlite:///{Path('registry/mlflow.db').absolute()}")
    version = client.get_model_version("boothline-demo", "1")
    assert version.tags["boothline.promoted"] == "true"
    assert version.tags["boothline.gate_reasons"] == "there is no champion yet"
    run = client.get_run(record["run_id"])
    assert run.data.params["subject.class_noun"] == "toy" and run.data.params["train.learning_rate"] == "0.001"
    assert run.data.params["eval.checkpoints"] == "[50]"
    assert run.data.metrics["eval.latent_fidelity"] == 0.02 and run.data.metrics["baseline.latent_fidelity"] == 0.0
    assert "eval.dino" not in run.data.metrics  # null metrics are not logged as numbers
    assert run.data.metrics["train.final_loss"] == 1.5
    assert run.data.metrics["train.steps_per_s"] == 2.0  # the summary's overall rate; the per-step one is apart
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train.window_steps_per_s")] == [1.0, 3.0]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train.loss")] == [(1, 2.0), (2, 1.5)]
    assert run.data.tags["base_model"] == TINY_ID
    assert run.data.tags["git.revision"] == "none (not a git repository)"
    assert run.data.tags["dvc.data/model"] == "abc123.dir"
    assert {k: version.tags[k] for k in ("git.revision", "dvc.data/model", "boothline.kind")} == {
        "git.revision": "none (not a git repository)", "dvc.data/model": "abc123.dir", "boothline.kind": "full"}
    assert run.data.tags["boothline.model_key"] == "f1@step-100"
    artifacts = {a.path for folder in ("eval", "eval/grids", "train")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"eval/metrics.json", "eval/grids/model.png", "train/metrics.csv", "train/summary.json",
            "train/loss.png"} <= artifacts


def test_rerun_registers_nothing_new_and_a_worse_model_stays_candidate(project):
    from mlflow import MlflowClient

    p = project(latent_fidelity=0.02)
    register.run(p)
    again = register.run(p)
    assert (again["version"], again["new_version"], again["promoted"]) == (1, False, True)
    assert again["reasons"] == ["version 1 is already the champion"]
    client = MlflowClient(f"sqlite:///{Path('registry/mlflow.db').absolute()}")
    assert len(client.search_model_versions("name = 'boothline-demo'")) == 1
    assert len(client.search_runs([client.get_experiment_by_name("boothline").experiment_id])) == 1

    worse = register.run(project(latent_fidelity=0.01, fingerprint="f2"))
    assert (worse["version"], worse["new_version"], worse["promoted"]) == (2, True, False)
    assert worse["reasons"] == ["latent_fidelity = 0.01 is worse than champion version 1's 0.02"]
    assert registry_json()["aliases"] == ["candidate"]
    assert registry_json()["alias_uri"] == "models:/boothline-demo@candidate"
    assert client.get_model_version_by_alias("boothline-demo", "champion").version in (1, "1")


def test_thresholds_in_params_refuse_promotion(project):
    record = register.run(project({"register": {"thresholds": {"latent_fidelity": 0.5}, "model_name": "gated"}}))
    assert (record["model_name"], record["promoted"], record["aliases"]) == ("gated", False, ["candidate"])
    assert record["reasons"][0] == "latent_fidelity = 0.02 fails latent_fidelity >= 0.5"


def test_missing_or_stale_evaluation_is_refused_before_logging(project, capsys):
    project()
    Path("data/eval/metrics.json").unlink()
    assert run_stage("register", register.run, ["--params", "params.yaml"]) == 1
    assert "data/eval/metrics.json: not found; run `python -m stages.evaluate` first" in capsys.readouterr().err
    write_evaluation(0.1)
    card = read_model_card("data/model")
    Path("data/model/boothline_model.json").write_text(json.dumps({**card, "fingerprint": "retrained"}))
    assert run_stage("register", register.run, ["--params", "params.yaml"]) == 1
    assert "scores another model" in capsys.readouterr().err
    assert not Path("data/registry.json").exists()


def test_the_best_checkpoint_is_registered_as_a_full_pipeline(params, store, trained_full):
    import mlflow

    shutil.copytree(trained_full / "data", "data", dirs_exist_ok=True)
    write_evaluation(0.02, best_step=1)
    record = register.run(params({**FAST_TRAIN, "register": {"use_best_checkpoint": True}}))
    fingerprint = read_model_card("data/model")["fingerprint"]
    assert (record["step"], record["model_key"]) == (1, f"{fingerprint}@step-1")
    local = Path(mlflow.artifacts.download_artifacts("models:/boothline-demo@candidate")) / "artifacts/pipeline"
    card = read_model_card(local)
    assert (card["kind"], card["step"], card["from_checkpoint"]) == ("full", 1, "data/checkpoints/step-1")
    assert (local / "unet/diffusion_pytorch_model.safetensors").is_file()


def test_a_fresh_process_loads_registered_full_and_lora_models_and_generates(project, params, tiny_dir, tmp_path):
    register.run(project())  # a full fine-tune, as boothline-demo
    lora = train_project(tmp_path / "lora", tiny_dir, {**FAST_TRAIN, "train": {"max_train_steps": 1,
                                                                                "lora": {"enabled": True}}})
    shutil.rmtree("data/model")
    shutil.copytree(lora / "data/model", "data/model")
    write_evaluation(0.03)
    register.run(params({"register": {"model_name": "boothline-lora"}}))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent(f"""
        import io, json, mlflow, numpy as np, pandas as pd
        from PIL import Image
        mlflow.set_tracking_uri("sqlite:///{Path('registry/mlflow.db').absolute()}")
        out = {{}}
        for name in ("boothline-demo", "boothline-lora"):
            model = mlflow.pyfunc.load_model(f"models:/{{name}}@champion")
            pngs = model.predict(["a sks toy on the beach", "a red sks toy"], params={{"steps": 2, "seed": 5}})
            again = model.predict(pd.DataFrame({{"prompt": ["a red sks toy"]}}), params={{"steps": 2, "seed": 6}})
            images = [Image.open(io.BytesIO(b)) for b in pngs]
            pixels = [np.asarray(im, dtype=np.int16) for im in (images[1], Image.open(io.BytesIO(again[0])))]
            out[name] = [[im.size for im in images], images[1].info["parameters"], int(abs(pixels[0] - pixels[1]).max())]
        print(json.dumps(out))
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the LoRA model rebuilds its builtin:tiny base
    proc = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("boothline-demo", "boothline-lora"):
        sizes, parameters, difference = out[name]
        assert sizes == [[64, 64], [64, 64]]
        assert parameters.startswith("a red sks toy\n") and "Steps: 2" in parameters and "Seed: 6" in parameters
        assert difference <= 2  # prompt i uses seed + i: the DataFrame call redraws the second image (batch 1 vs 2)
    assert not (elsewhere / "data").exists()  # nothing built in the caller's directory
    assert (tmp_path / "boothline/tiny/model_index.json").is_file()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_registration_through_a_real_mlflow_server_is_readable_over_rest(project, mlflow_template, tmp_path):
    port = free_port()
    database = tmp_path / "server.db"
    shutil.copy(mlflow_template, database)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{database}",
               "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "mlflow server exited"
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start within 120 s"
                time.sleep(0.5)

        record = register.run(project({"register": {"tracking_uri": base}}))
        assert (record["tracking_uri"], record["version"], record["promoted"]) == (base, 1, True)
        version = get_json(f"{base}/api/2.0/mlflow/model-versions/get?name=boothline-demo&version=1")["model_version"]
        tags = {t["key"]: t["value"] for t in version["tags"]}
        assert (version["version"], version["status"], tags["boothline.model_key"]) == ("1", "READY", "f1@step-100")
        champion = get_json(f"{base}/api/2.0/mlflow/registered-models/alias?name=boothline-demo&alias=champion")
        assert champion["model_version"]["version"] == "1"
        assert list((tmp_path / "server-artifacts").rglob("model_index.json"))  # uploaded through the server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
