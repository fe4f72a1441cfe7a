"""The job table's bookkeeping, with a scripted backend standing in for Prefect (the end-to-end tests run
real flow runs): holds on acceptance, the queue limit, resubmission after a crash, one charge per job."""

from __future__ import annotations

import httpx
import pytest
import yaml
from service_helpers import Server, auth, demo_files

from boothline.service.jobs import RunState

FORM = {"token": "sks", "class_noun": "toy", "kind": "object"}


class ScriptedBackend:
    """Flow runs whose states the test sets; remembers what was submitted."""

    def __init__(self):
        self.runs: dict[str, RunState] = {}
        self.submitted: list[tuple[str, dict, str]] = []
        self.canceled: list[str] = []

    def submit(self, deployment, parameters, key):
        run_id = f"run-{len(self.submitted)}"
        self.submitted.append((deployment, parameters, key))
        self.runs[run_id] = RunState("queued")
        return run_id

    def state(self, run_id):
        return self.runs[run_id]

    def crash(self, run_id, message):
        self.runs[run_id] = RunState("crashed", message)

    def cancel(self, run_id):
        self.canceled.append(run_id)
        self.runs[run_id] = RunState("canceled")

    def close(self):
        pass  # holds no clients


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    from conftest import REPO, repo_params

    from boothline.params import load_params
    from boothline.paths import Workspace
    from boothline.service.accounts import create_key, create_user
    from boothline.service.app import create_app

    root = tmp_path_factory.mktemp("jobs")
    (root / "params.yaml").write_text(yaml.safe_dump(repo_params({"service": {"max_queued_jobs": 2}})))
    backend = ScriptedBackend()
    app = create_app(load_params(root / "params.yaml"), Workspace(root), backend=backend, reconcile_every=3600)
    # Granted credits, no daily allowance: the allowance resets at 00:00 UTC, which a run may cross.
    create_user(app.state.service.store, "alice", 0)
    from boothline.service import credits as ledger

    ledger.grant(app.state.service.store, "alice", 150)
    key = create_key(app.state.service.store, "alice")[1]
    with Server(app) as url, httpx.Client(base_url=url, timeout=60, headers=auth(key)) as client:
        subject = client.post("/v1/subjects", data=FORM, files=demo_files(REPO)).json()["id"]
        yield client, app.state.jobs, backend, subject


def credits(client):
    return client.get("/v1/me").json()["credits"]


def test_a_training_holds_its_credits_and_is_charged_once_when_it_succeeds(scripted):
    client, jobs, backend, subject = scripted
    created = client.post("/v1/trainings", json={"subject": subject, "settings": {"train.max_train_steps": 4}})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and job["queue_position"] == 1 and job["urls"]["events"].count("sig=") == 1
    deployment, parameters, key = backend.submitted[-1]
    assert deployment == "dreambooth-pipeline/service-training" and parameters["stages"][-1] == "register"
    assert yaml.safe_load(open(parameters["params_file"]))["train"]["max_train_steps"] == 4
    assert credits(client)["held"] == 20 and credits(client)["available"] == 130
    run_id = f"run-{len(backend.submitted) - 1}"
    backend.runs[run_id] = RunState("running")
    jobs.reconcile()
    assert client.get(f"/v1/trainings/{job['id']}").json()["status"] == "running"
    backend.runs[run_id] = RunState("succeeded")
    jobs.reconcile()
    jobs.reconcile()
    done = client.get(f"/v1/trainings/{job['id']}").json()
    assert done["status"] == "succeeded" and done["result"]["registered"] is None  # the scripted run made nothing
    assert credits(client)["available"] == 130 and credits(client)["held"] == 0  # charged 20, once


def test_a_crashed_run_is_submitted_again_and_a_canceled_job_returns_its_hold(scripted):
    client, jobs, backend, subject = scripted
    job = client.post("/v1/trainings", json={"subject": subject}).json()
    first = f"run-{len(backend.submitted) - 1}"
    backend.runs[first] = RunState("crashed", "worker killed")
    jobs.reconcile()
    again = client.get(f"/v1/trainings/{job['id']}").json()
    assert again["attempt"] == 2 and again["status"] == "queued" and backend.submitted[-1][2] == f"{job['id']}-2"
    before = credits(client)["available"]
    canceled = client.post(f"/v1/trainings/{job['id']}/cancel").json()
    assert canceled["status"] == "canceled" and backend.canceled[-1] == f"run-{len(backend.submitted) - 1}"
    assert credits(client)["available"] == before + 20
    assert client.post(f"/v1/trainings/{job['id']}/cancel").status_code == 409


def test_a_listing_gives_each_queued_job_its_place_in_the_line(scripted):
    client, jobs, backend, subject = scripted
    first, second = (client.post("/v1/trainings", json={"subject": subject}).json() for _ in range(2))
    listed = {job["id"]: job["queue_position"] for job in client.get("/v1/trainings").json()["data"]}
    assert listed[second["id"]] == listed[first["id"]] + 1 == second["queue_position"]
    assert listed[first["id"]] == client.get(f"/v1/trainings/{first['id']}").json()["queue_position"]
    for job in (first, second):
        assert client.post(f"/v1/trainings/{job['id']}/cancel").json()["queue_position"] is None


def test_a_submission_beyond_the_balance_is_402_with_the_balance(scripted):
    client, jobs, backend, subject = scripted
    from boothline.service import credits as ledger

    ledger.grant(jobs.state.store, "alice", -1000)
    ledger.grant(jobs.state.store, "alice", 30)  # enough for one training (20), not for two
    holding = client.post("/v1/trainings", json={"subject": subject}).json()
    refused = client.post("/v1/trainings", json={"subject": subject})
    assert refused.status_code == 402, refused.text
    assert refused.json()["balance"]["available"] == 10 and "resets_at" in refused.json()["balance"]
    client.post(f"/v1/trainings/{holding['id']}/cancel")
    ledger.grant(jobs.state.store, "alice", 1000)


def test_refusals_name_the_reason(scripted):
    client, jobs, backend, subject = scripted
    bad = client.post("/v1/trainings", json={"subject": subject, "settings": {"model.base": "x"}})
    assert bad.status_code == 422 and bad.json()["field"] == "settings.model.base"
    assert client.post("/v1/trainings", json={"subject": "sub_nope"}).status_code == 404
    hook = client.post("/v1/trainings", json={"subject": subject, "webhook": "http://169.254.169.254/x"})
    assert hook.status_code == 422 and hook.json()["error"] == "webhook_not_allowed"
    client.post("/v1/trainings", json={"subject": subject})
    client.post("/v1/trainings", json={"subject": subject})  # now 2 active: the limit
    full = client.post("/v1/trainings", json={"subject": subject})
    assert full.status_code == 429 and full.headers["retry-after"]
    listed = client.get("/v1/trainings").json()["data"]
    assert [j["status"] for j in listed][:2] == ["queued", "queued"]


def test_a_running_job_whose_heartbeat_stopped_is_submitted_again(scripted):
    import os
    import time
    from datetime import datetime, timedelta, timezone

    from boothline.service.jobs import NEVER_BEATEN_SECONDS

    from boothline.paths import Workspace

    client, jobs, backend, subject = scripted
    for active in client.get("/v1/trainings").json()["data"]:
        if active["status"] in ("queued", "running"):
            client.post(f"/v1/trainings/{active['id']}/cancel")
    job = client.post("/v1/trainings", json={"subject": subject}).json()
    run_id = f"run-{len(backend.submitted) - 1}"
    backend.runs[run_id] = RunState("running")
    jobs.reconcile()
    beat = Workspace(jobs.get(1, job["id"]).workspace).flow_run_heartbeat(run_id)
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.write_text("alive\n")
    jobs.reconcile()
    assert client.get(f"/v1/trainings/{job['id']}").json()["attempt"] == 1  # beating: left alone
    beat.unlink()  # what a run does as it finishes (a dead process cannot): still Running for a moment
    jobs.reconcile()
    assert client.get(f"/v1/trainings/{job['id']}").json()["attempt"] == 1
    beat.write_text("alive\n")
    os.utime(beat, (time.time() - 120, time.time() - 120))
    jobs.reconcile()
    again = client.get(f"/v1/trainings/{job['id']}").json()
    assert again["attempt"] == 2 and backend.runs[run_id].status == "crashed"

    retry_id = f"run-{len(backend.submitted) - 1}"  # running for a long time and never beaten: died at once
    long_ago = datetime.now(timezone.utc) - timedelta(seconds=NEVER_BEATEN_SECONDS + 5)
    backend.runs[retry_id] = RunState("running", started_at=datetime.now(timezone.utc))
    jobs.reconcile()
    assert client.get(f"/v1/trainings/{job['id']}").json()["attempt"] == 2  # young (the job itself is not)
    backend.runs[retry_id] = RunState("running", started_at=long_ago)
    jobs.reconcile()
    assert client.get(f"/v1/trainings/{job['id']}").json()["attempt"] == 3
    client.post(f"/v1/trainings/{job['id']}/cancel")


def test_generation_settings_are_the_generate_sections_keys_bare_or_dotted(scripted):
    client, jobs, backend, subject = scripted
    request = {"model": "models:/nothing@champion", "prompts": ["{subject} on the beach"]}
    refused = client.post("/v1/generations", json={**request, "settings": {"generate.bogus": 1}})
    assert refused.status_code == 422 and refused.json()["field"] == "settings.bogus"
    for settings in ({"steps": 2}, {"generate.steps": 2}):  # GET /v1/settings lists them dotted
        answer = client.post("/v1/generations", json={**request, "settings": settings})
        assert answer.json()["error"] != "invalid_settings", answer.text
