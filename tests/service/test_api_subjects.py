"""The API over a real server: keys, JSON errors, subjects validated by the validate stage, ownership."""

from __future__ import annotations

from service_helpers import auth, client, demo_files, service  # noqa: F401 - fixtures

FORM = {"token": "sks", "class_noun": "toy", "kind": "object"}


def test_health_needs_no_key_and_everything_else_does(client, service):
    assert client.get("/health").json() == {"status": "ok"}
    refused = client.get("/v1/me")
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert client.get("/v1/me", headers=auth("bl_nonsense")).status_code == 401
    me = client.get("/v1/me", headers=auth(service[1]["alice"])).json()
    assert me["user"] == "alice" and me["credits"]["available"] == 50 and "resets_at" in me["credits"]
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200


def test_the_studio_page_needs_no_key_and_stays_on_its_origin(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>boothline studio</title>" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    script = client.get("/studio.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    code = script.text.replace("http://www.w3.org/2000/svg", "")  # a namespace name, never fetched
    assert "http://" not in code and "https://" not in code  # every URL it fetches is relative
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_a_subject_with_a_corrupt_photo_is_refused_with_its_reason_and_leaves_nothing(client, service):
    url, keys, root, repo = service
    files = demo_files(repo, [("holiday/../../broken.png", b"\x89PNG\r\n\x1a\n not really")])
    answer = client.post("/v1/subjects", headers=auth(keys["alice"]), data=FORM, files=files)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "photos_rejected" and [r["file"] for r in body["rejected"]] == ["broken.png"]
    assert body["rejected"][0]["reason"] and len(body["accepted"]) == 5
    assert not list((root / "data/service/users").rglob("*.png"))


def test_subjects_are_created_listed_and_private(client, service):
    url, keys, root, repo = service
    created = client.post("/v1/subjects", headers=auth(keys["alice"]), data=FORM, files=demo_files(repo))
    assert created.status_code == 201, created.text
    subject = created.json()
    assert subject["token"] == "sks" and len(subject["photos"]) == 5
    listed = client.get("/v1/subjects", headers=auth(keys["alice"])).json()
    assert subject["id"] in [s["id"] for s in listed["data"]]
    assert client.get(f"/v1/subjects/{subject['id']}", headers=auth(keys["bob"])).status_code == 404
    assert client.delete(f"/v1/subjects/{subject['id']}", headers=auth(keys["bob"])).status_code == 404
    assert client.delete(f"/v1/subjects/{subject['id']}", headers=auth(keys["alice"])).status_code == 204
    assert client.get(f"/v1/subjects/{subject['id']}", headers=auth(keys["alice"])).status_code == 404


def test_bad_fields_are_json_errors_naming_the_field(client, service):
    keys, repo = service[1], service[3]
    bad_kind = client.post("/v1/subjects", headers=auth(keys["alice"]), data={**FORM, "kind": "robot"},
                           files=demo_files(repo))
    assert bad_kind.status_code == 422 and bad_kind.json()["field"] == "kind"
    missing = client.post("/v1/subjects", headers=auth(keys["alice"]), data=FORM)
    assert missing.status_code == 422 and missing.json()["field"] == "photos"
    assert client.get("/v1/nothing-here", headers=auth(keys["alice"])).json()["error"] == "not_found"


def test_discovery_lists_samplers_and_editable_settings(client, service):
    key = service[1]["alice"]
    samplers = client.get("/v1/samplers", headers=auth(key)).json()["data"]
    assert {"dpm++", "euler-a"} <= {s["name"] for s in samplers}
    settings = client.get("/v1/settings", headers=auth(key)).json()
    assert "train.max_train_steps" in {s["key"] for s in settings["training"]}
    assert "generate.guidance" in {s["key"] for s in settings["generation"]}
