"""Helpers for the API tests: a real `boothline serve` app under uvicorn on a free loopback port with two users
and their keys, auth headers, and the demo photos as multipart files. Test modules import the fixtures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from conftest import free_port

# Service params for tests that run real trainings: the tiny model at toy sizes.
FAST = {"priors": {"num_images": 2, "steps": 2, "batch_size": 2},
        "train": {"max_train_steps": 4, "checkpoint_every": 2, "validate_every": 2, "batch_size": 1},
        "eval": {"max_prompts": 1, "images_per_prompt": 1, "steps": 2, "fidelity_seeds": 1, "checkpoints": [2]},
        "generate": {"steps": 2}, "register": {"thresholds": {}}}


def wait_for_deployments(timeout: float = 120) -> None:
    """Until the service's two deployments exist on the Prefect server (flows.serve registers them)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                for name in ("dreambooth-pipeline/service-training", "batch-generate/service-generation"):
                    client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


class Server:
    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(base URL, {user: key}, service root) of a running server on the unit-test model."""
    from conftest import REPO, repo_params

    from boothline.params import load_params
    from boothline.paths import Workspace
    from boothline.service.accounts import create_key, create_user
    from boothline.service.app import create_app

    root = tmp_path_factory.mktemp("serve")
    (root / "params.yaml").write_text(yaml.safe_dump(repo_params(), sort_keys=False))
    params = load_params(root / "params.yaml")
    app = create_app(params, Workspace(root))
    store = app.state.service.store
    keys = {}
    for name in ("alice", "bob"):
        create_user(store, name, 50)
        keys[name] = create_key(store, name)[1]
    with Server(app) as url:
        yield url, keys, root, REPO


@pytest.fixture
def client(service):
    url, keys, root, _ = service
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def demo_files(repo: Path, extra: list[tuple[str, bytes]] = ()) -> list:
    demo = sorted((repo / "data/subjects/demo").glob("*.png"))
    files = [("photos", (p.name, p.read_bytes(), "image/png")) for p in demo]
    return files + [("photos", (name, data, "image/png")) for name, data in extra]
