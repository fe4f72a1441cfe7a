"""The service as `make serve` runs it, with real Prefect flow runs on the tiny model at reduced settings: the
API as a `boothline serve` process, the worker as `python -m flows.serve`, both against a real `prefect
server start` (whose services run: its repossessor frees the `gpu` slot a killed worker's task had leased
once the lease expires; the session's test harness is an ephemeral server, which runs none).

- The whole journey through the API: upload, train (following the event stream), see the registered model,
  generate in two styles, list history, fetch an image and its parameters, regenerate it bit for bit,
  export a ZIP, delete an image.
- Faults: the API process killed while a generation runs and started again; separately, the worker killed
  and started again. Each time the job completes, the history has each image exactly once, and the credits
  are charged once.
- The web studio in headless Chromium, as another user: the same journey through the page (studio_browser).

One training serves the journey and the faults: the journey follows it as it runs, and the faults generate
with its model. The studio trains its own, through the page.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import httpx
import pytest
import yaml
from service_helpers import FAST, auth, demo_files, free_port, wait_for_deployments

IMAGES = {"prompts": ["{subject} on the beach", "{subject} in the snow"], "styles": ["anime", "watercolor"],
          "seeds": 2, "settings": {"steps": 8}}  # 8 images: long enough to be killed in the middle
HEARTBEAT_TIMEOUT_S = 20  # the killed worker's run is found dead this long after its last beat


class Process:
    def __init__(self, args, cwd, env, log):
        self.args, self.cwd, self.env, self.log = args, cwd, env, log
        self.proc = None

    def start(self):
        with open(self.log, "a") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


def wait_until(predicate, timeout=300, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


def follow(client, url: str, timeout: float = 600) -> list[dict]:
    """Every job object an event stream sends, until it ends."""
    seen = []
    with client.stream("GET", url, timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    return seen


@pytest.fixture(scope="module")
def prefect_server_process(tmp_path_factory):
    """The API URL of a real `prefect server start` on a free loopback port, for this module."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from boothline.service.launch import wait_for

    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = Process([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                     home, env, home / "server.log").start()
    try:
        wait_for(f"{url}/health", "the Prefect server", server.proc)
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
            yield url
    finally:
        server.kill()


@pytest.fixture(scope="module")
def deployment(prefect_server_process, tmp_path_factory, tiny_dir):
    """A project with the API and a worker as separate processes, a user, her subject and its training (just
    submitted): (client, project root, API, worker, training job)."""
    from conftest import REPO, repo_params

    from boothline.service.accounts import create_key, create_user
    from boothline.service.credits import grant
    from boothline.service.store import open_store

    root = tmp_path_factory.mktemp("service")
    port = free_port()
    service = {"port": port, "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S}
    (root / "params.yaml").write_text(yaml.safe_dump(repo_params({**FAST, "service": service})))
    shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    shutil.copytree(tiny_dir, root / "data/base/tiny")
    store = open_store(None, root / "data/service")
    # Granted credits, no daily allowance: the allowance resets at 00:00 UTC, which a run may cross (one did).
    create_user(store, "alice", 0)
    grant(store, "alice", 50)
    key = create_key(store, "alice")[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_server_process}
    api = Process([sys.executable, "-m", "boothline.cli", "serve"], root, env, root / "api.log").start()
    worker = Process([sys.executable, "-m", "flows.serve", "--names", "service-training,service-generation"],
                     root, env, root / "worker.log").start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=auth(key)) as client:
        wait_until(lambda: _up(client), 60, "the API")
        subject = client.post("/v1/subjects", data={"token": "sks", "class_noun": "toy", "kind": "object"},
                              files=demo_files(REPO))
        assert subject.status_code == 201, subject.text
        wait_for_deployments()
        training = client.post("/v1/trainings", json={"subject": subject.json()["id"],
                                                       "settings": {"train.max_train_steps": 4}})
        assert training.status_code == 201, training.text
        yield client, root, api, worker, training.json()
    for process in (api, worker):
        if process.proc.poll() is None:
            process.kill()


@pytest.fixture(scope="module")
def model(deployment) -> str:
    """The registered model of the deployment's training, once it has succeeded."""
    client, root, _, _, training = deployment
    done = wait_until(lambda: (j := client.get(training["urls"]["self"]).json())["status"] in
                      ("succeeded", "failed", "canceled") and j, 600, "the training")
    assert done["status"] == "succeeded", (done, (root / "worker.log").read_text()[-3000:])
    return f"models:/{done['input']['subject']}@candidate"


def _up(client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def history_ids(root) -> list[str]:
    from boothline.generation.history import read_history

    rows = read_history(root / "data/service/users/1/data/history")
    return rows.image_id.tolist()


def started_images(client, job_id) -> int:
    return client.get(f"/v1/generations/{job_id}").json()["progress"].get("images_done", 0)


def test_the_whole_journey(deployment):
    client, root, _, _, training = deployment
    events = follow(client, training["urls"]["events"])
    final = events[-1]
    assert final["status"] == "succeeded", (final, (root / "worker.log").read_text()[-3000:])
    assert events[0]["status"] in ("queued", "running") and len(events) >= 2
    assert final["progress"]["step"] == 4 and final["progress"]["total"] == 4 and final["progress"]["losses"]
    registered = final["result"]["registered"]
    assert registered["version"] == 1 and "candidate" in registered["aliases"]
    assert final["result"]["metrics"]["latent_fidelity"] is not None
    grids = final["urls"]["validation_grids"]
    assert len(grids) == 2 and all(client.get(g, headers={}).content[:4] == b"\x89PNG" for g in grids)
    assert client.get(f"/v1/trainings/{training['id']}/grids/..%2Fsummary.json").status_code == 404
    models = client.get("/v1/models").json()["data"]
    assert models[0]["name"] == training["input"]["subject"] and models[0]["versions"][0]["version"] == 1
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


@pytest.mark.parametrize("killed", ["api", "worker"])
def test_a_killed_process_loses_nothing_and_charges_once(deployment, model, killed):
    client, root, api, worker, _ = deployment
    before_ids = history_ids(root) if (root / "data/service/users/1/data/history").is_dir() else []
    credits_before = client.get("/v1/me").json()["credits"]["available"]
    prompts = [p.replace("beach", f"beach {killed}") for p in IMAGES["prompts"]]  # new images each time
    job = client.post("/v1/generations", json={**IMAGES, "prompts": prompts, "model": model}).json()
    assert job["credits_held"] == 8
    wait_until(lambda: started_images(client, job["id"]) >= 1, 300, "a first image")
    process = api if killed == "api" else worker
    process.kill()
    time.sleep(3)
    process.start()
    wait_until(lambda: _up(client), 60, "the API again")
    final = wait_until(lambda: (j := client.get(f"/v1/generations/{job['id']}").json())["status"] in
                       ("succeeded", "failed") and j, 600, "the job")
    assert final["status"] == "succeeded", json.dumps(final)[:2000]
    new_ids = history_ids(root)[len(before_ids):]
    assert len(new_ids) == 8 == len(set(new_ids))  # each image exactly once
    if killed == "worker":
        assert final["attempt"] == 2  # the crashed run was submitted again
    assert client.get("/v1/me").json()["credits"]["available"] == credits_before - 8


def test_the_studio_page_in_a_real_browser(deployment):
    """The web studio at `/`, in headless Chromium against the same deployment: the whole journey a person
    makes, with screenshots at 1280 and 390 px wide."""
    from conftest import REPO
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright
    from studio_browser import chromium, launch, screenshot

    from boothline.service.accounts import create_key, create_user
    from boothline.service.credits import grant
    from boothline.service.store import open_store

    chromium()  # skips with how to install it
    client, root, _, _, _ = deployment
    store = open_store(None, root / "data/service")
    create_user(store, "carol", 0)
    grant(store, "carol", 50)
    key = create_key(store, "carol")[1]
    origin = str(client.base_url).rstrip("/")
    demo = sorted((REPO / "data/subjects/demo").glob("*.png"))
    second = 60_000  # Playwright counts milliseconds

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True).new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(origin)
        page.fill("#api-key", "bl_not-a-key")
        page.click("#sign-in-form button")
        expect(page.locator("#sign-in-error")).to_contain_text("not accepted")
        page.fill("#api-key", key)
        page.click("#sign-in-form button")
        expect(page.locator("#user-name")).to_have_text("carol")
        expect(page.locator("#credits")).to_contain_text("50 credits available")

        # A subject: the demo photos and a corrupt one, whose reason shows beside it; removed, the rest saves.
        page.set_input_files("#photo-input", [{"name": p.name, "mimeType": "image/png", "buffer": p.read_bytes()} for p in demo] + [
            {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n not really"}])
        page.click("#subject-submit")
        refused = page.locator(".photo", has_text="broken.png").locator(".status")
        expect(refused).to_contain_text("refused: ")
        expect(page.locator(".photo .status-accepted")).to_have_count(len(demo))
        page.click("button[aria-label='Remove broken.png']")
        page.click("#subject-submit")
        expect(page.locator("#subject-list .card")).to_have_count(1)

        # Training with a changed setting; reloaded while it runs, the page follows it again to the end.
        page.click("#subject-list .card button:text('Train')")
        page.click("#training-form summary")
        page.fill("[name='train.max_train_steps']", "4")
        page.click("#training-form button[type=submit]")
        card = page.locator("#training-jobs .card").first
        expect(card).to_have_attribute("data-status", re.compile("queued|running"))
        page.reload()
        page.click("[data-tab=training]")
        expect(card).to_have_attribute("data-status", re.compile("queued|running"))  # re-attached, not over yet
        expect(card).to_have_attribute("data-status", "succeeded", timeout=10 * second)
        expect(card.locator(".step")).to_contain_text("step 4 of 4")
        expect(card.locator(".loss-curve")).to_be_visible()
        expect(card.locator("table.metrics")).to_contain_text("latent_fidelity")
        expect(card.locator(".registered")).to_contain_text("version 1")
        screenshot(page, "training-1280")

        # Two styles, two seeds: the images appear in the job's card, then in the gallery.
        page.click("[data-tab=generate]")
        # A registered model, not the "no model yet" placeholder the list shows until /v1/models answers: with the
        # placeholder the required select blocks the submit, silently (seen on a slow machine).
        expect(page.locator("#gen-model option[value^='models:/']")).not_to_have_count(0, timeout=second)
        for style in ("photographic", "anime", "watercolor"):
            page.locator(f"#style-picker input[value='{style}']").set_checked(style != "photographic")
        page.fill("#gen-seeds", "2")
        page.fill("#gen-negative", "blurry, extra legs")
        page.click("#generate-form button[type=submit]")
        job = page.locator("#generation-jobs .card").first
        expect(job).to_have_attribute("data-status", "succeeded", timeout=5 * second)
        expect(job.locator(".images img")).to_have_count(4)
        expect(page.locator("#credits")).to_contain_text("26 credits available")  # 50 - 20 - 4
        page.click("[data-tab=gallery]")
        tiles = page.locator("#gallery li")
        expect(tiles).to_have_count(4)
        screenshot(page, "gallery-1280")

        # An image large with every parameter; "use these settings" fills the form, the negative prompt
        # included; the download has them.
        tiles.first.locator("button.open").click()
        parameters = page.locator("#viewer-parameters")
        expect(parameters).to_contain_text("Seed: ")
        screenshot(page, "image-1280")
        shown = dict(zip(page.locator("#viewer-params dt").all_inner_texts(),
                         page.locator("#viewer-params dd").all_inner_texts()))
        with page.expect_download() as download:
            page.click("#download-image")
        with Image.open(download.value.path()) as png:
            assert png.info["parameters"] == parameters.inner_text()
        page.click("#regenerate")
        expect(page.locator("#viewer-message")).to_contain_text("identical, bit for bit")
        page.eval_on_selector("#gen-negative", "field => { field.value = '' }")
        page.click("#use-settings")
        expect(page.locator("#tab-generate")).to_be_visible()
        assert page.input_value("#gen-negative") == "blurry, extra legs"  # without the style's own phrases
        assert page.input_value("#gen-prompt") == shown["prompt"]
        assert page.input_value("#gen-seeds") == f"{shown['seed']},"
        assert page.input_value("#gen-steps") == shown["steps"]
        assert page.input_value("#gen-sampler") == shown["sampler"]
        checked = page.locator("#style-picker input:checked")
        expect(checked).to_have_count(1)
        assert checked.get_attribute("value") == shown["style"]

        # Filters, and a ZIP of a selection.
        page.click("[data-tab=gallery]")
        page.select_option("#gallery-filters [name=style]", "anime")
        page.click("#gallery-filters button[type=submit]")
        expect(tiles).to_have_count(2)
        tiles.nth(0).locator(".pick-box").check()
        tiles.nth(1).locator(".pick-box").check()
        with page.expect_download() as download:
            page.click("#download-zip")
        assert len(zipfile.ZipFile(download.value.path()).namelist()) == 3  # two images and metadata.csv

        tiles.nth(1).locator("button.open").click()  # delete one
        page.click("#delete-image")
        expect(tiles).to_have_count(1)
        theme = page.evaluate("document.documentElement.dataset.theme || ''")
        page.click("#theme-toggle")
        assert page.evaluate("document.documentElement.dataset.theme") == ("light" if theme == "dark" else "dark")

        page.click("#sign-out")
        expect(page.locator("#sign-in")).to_be_visible()
        assert page.evaluate("localStorage.getItem('boothline.key')") is None

        # A phone: the same gallery 390 px wide, without horizontal scrolling, in the dark theme.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark").new_page()
        phone.on("request", lambda request: requested.append(request.url))
        phone.goto(origin)
        phone.fill("#api-key", key)
        phone.click("#sign-in-form button")
        phone.click("[data-tab=gallery]")
        expect(phone.locator("#gallery li")).to_have_count(3)  # one deleted
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(phone, "gallery-390")
        phone.click("[data-tab=generate]")
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(phone, "generate-390")
        browser.close()
    assert requested and all(url.startswith((origin + "/", "blob:", "data:")) for url in requested), \
        [url for url in requested if not url.startswith(origin)]
