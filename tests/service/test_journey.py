"""The whole journey through the API, with real Prefect flow runs: upload, train (following the event
stream), see the registered model, generate in two styles, list history, fetch an image and its parameters,
regenerate it bit for bit, export a ZIP, delete an image. The service's deployments are served by
`python -m flows.serve` in a subprocess, against the session's Prefect server; the model is the tiny one at
reduced settings."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import httpx
import pytest
import yaml
from service_helpers import FAST, Server, auth, demo_files, wait_for_deployments

pytest_plugins = ["flows_fixtures"]



def follow(client, url: str, timeout: float = 600) -> list[dict]:
    """Every job object an event stream sends, until it ends."""
    seen = []
    with client.stream("GET", url, timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    return seen


@pytest.fixture(scope="module")
def journey(prefect_server, tmp_path_factory, tiny_dir):
    from conftest import REPO, repo_params

    from boothline.params import load_params
    from boothline.paths import Workspace
    from boothline.service.accounts import create_key, create_user
    from boothline.service.app import create_app

    root = tmp_path_factory.mktemp("journey")
    (root / "params.yaml").write_text(yaml.safe_dump(repo_params(FAST), sort_keys=False))
    shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    shutil.copytree(tiny_dir, root / "data/base/tiny")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_server}
    worker = subprocess.Popen([sys.executable, "-m", "flows.serve", "--names", "service-training,service-generation"],
                              cwd=root, env=env, stdout=open(root / "serve.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    app = create_app(load_params(root / "params.yaml"), Workspace(root), reconcile_every=0.5)
    create_user(app.state.service.store, "alice", 50)
    key = create_key(app.state.service.store, "alice")[1]
    cwd = os.getcwd()
    os.chdir(root)  # the API resolves `builtin:tiny` (data/base/tiny) from here, as `make serve` runs it
    try:
        wait_for_deployments()
        with Server(app) as url, httpx.Client(base_url=url, timeout=120, headers=auth(key)) as client:
            yield client, root, REPO
    finally:
        os.chdir(cwd)
        worker.terminate()
        worker.wait(30)


def test_the_whole_journey(journey):
    client, root, repo = journey
    subject = client.post("/v1/subjects", data={"token": "sks", "class_noun": "toy", "kind": "object"},
                          files=demo_files(repo))
    assert subject.status_code == 201, subject.text
    training = client.post("/v1/trainings", json={"subject": subject.json()["id"],
                                                   "settings": {"train.max_train_steps": 4}})
    assert training.status_code == 201, training.text
    events = follow(client, training.json()["urls"]["events"])
    final = events[-1]
    assert final["status"] == "succeeded", (final, (root / "serve.log").read_text()[-3000:])
    assert events[0]["status"] in ("queued", "running") and len(events) >= 2
    assert final["progress"]["step"] == 4 and final["progress"]["total"] == 4 and final["progress"]["losses"]
    registered = final["result"]["registered"]
    assert registered["version"] == 1 and "candidate" in registered["aliases"]
    assert final["result"]["metrics"]["latent_fidelity"] is not None
    models = client.get("/v1/models").json()["data"]
    assert models[0]["name"] == subject.json()["id"] and models[0]["versions"][0]["version"] == 1
    assert client.get("/v1/me").json()["credits"]["available"] == 30  # the training's 20

    generation = client.post("/v1/generations", json={
        "model": f"models:/{models[0]['name']}@candidate", "prompts": ["{subject} on the beach"],
        "styles": ["anime", "watercolor"], "seeds": 1})
    assert generation.status_code == 201, generation.text
    assert generation.json()["credits_held"] == 2
    done = follow(client, generation.json()["urls"]["events"])[-1]
    assert done["status"] == "succeeded", done
    assert len(done["result"]["image_ids"]) == 2 and len(done["urls"]["images"]) == 2
    assert client.get("/v1/me").json()["credits"]["available"] == 28

    history = client.get("/v1/history").json()["data"]
    assert sorted(r["style"] for r in history) == ["anime", "watercolor"]
    image_id = history[0]["image_id"]
    png = client.get(history[0]["url"], headers={})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert "Seed: " in client.get(f"/v1/images/{image_id}/params").json()["parameters"]
    assert client.post(f"/v1/images/{image_id}/regenerate").json()["identical"] is True
    exported = client.post("/v1/exports", json={"image_ids": [r["image_id"] for r in history]}).json()
    archive = zipfile.ZipFile(io.BytesIO(client.get(exported["url"]).content))
    assert "metadata.csv" in archive.namelist() and len(archive.namelist()) == 3
    assert client.delete(f"/v1/images/{image_id}").status_code == 204
    assert image_id not in [r["image_id"] for r in client.get("/v1/history").json()["data"]]
