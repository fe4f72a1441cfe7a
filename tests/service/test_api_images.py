"""A user's images over the API: history with filters and cursors, the PNG and its parameters, bit-for-bit
regeneration (one credit), ZIP exports with metadata.csv, deletion (gone from history), privacy."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from PIL import Image
from service_helpers import auth, client, service  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def alice_images(service):
    """Four images of alice's, rendered by `boothline generate` into her workspace (her own history log)."""
    from boothline.cli import main

    url, keys, root, repo = service
    alice_root = root / "data/service/users/1"
    for styles in ("anime,pixel-art", "watercolor,line-art"):
        assert main(["--params", str(root / "params.yaml"), "generate", "--workspace", str(alice_root),
                     "--prompt", "{subject} on the beach", "--styles", styles, "--seeds", "1", "--steps", "2",
                     "--width", "32", "--height", "32", "--model", "builtin:tiny"]) == 0
    return alice_root


def test_history_lists_newest_first_with_filters_and_cursors(client, service, alice_images):
    key = service[1]["alice"]
    listed = client.get("/v1/history", headers=auth(key), params={"limit": 3}).json()
    assert len(listed["data"]) == 3 and listed["next_cursor"]
    rest = client.get("/v1/history", headers=auth(key), params={"limit": 3, "cursor": listed["next_cursor"]}).json()
    ids = [r["image_id"] for r in listed["data"] + rest["data"]]
    assert len(ids) == 4 == len(set(ids)) and rest["next_cursor"] is None
    stamps = [r["created_at"] for r in listed["data"] + rest["data"]]
    assert stamps == sorted(stamps, reverse=True)
    anime = client.get("/v1/history", headers=auth(key), params={"style": "anime"}).json()["data"]
    assert [r["style"] for r in anime] == ["anime"]
    assert client.get("/v1/history", headers=auth(key), params={"since": "not-a-date"}).status_code == 422
    assert client.get("/v1/history", headers=auth(service[1]["bob"])).json()["data"] == []


def test_an_image_its_parameters_and_a_signed_url(client, service, alice_images):
    key = service[1]["alice"]
    row = client.get("/v1/history", headers=auth(key), params={"style": "pixel-art"}).json()["data"][0]
    png = client.get(f"/v1/images/{row['image_id']}", headers=auth(key))
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (32, 32)
    assert "Steps: 2" in Image.open(io.BytesIO(png.content)).info["parameters"]
    assert client.get(row["url"]).content == png.content  # signed: no key needed
    assert client.get(f"/v1/images/{row['image_id']}").status_code == 401
    assert client.get(row["url"].replace(row["image_id"], "0" * 16)).status_code == 401  # signed for another image
    params = client.get(row["params_url"], headers=auth(key)).json()
    assert params["image_id"] == row["image_id"] and "Steps: 2" in params["parameters"]
    assert params["parameters"].startswith(row["full_prompt"])
    assert client.get(f"/v1/images/{row['image_id']}", headers=auth(service[1]["bob"])).status_code == 404


def test_regenerate_is_bit_for_bit_and_costs_one_credit(client, service, alice_images):
    key = service[1]["alice"]
    row = client.get("/v1/history", headers=auth(key), params={"style": "anime"}).json()["data"][0]
    before = client.get("/v1/me", headers=auth(key)).json()["credits"]["available"]
    again = client.post(f"/v1/images/{row['image_id']}/regenerate", headers=auth(key)).json()
    assert again["identical"] is True
    assert client.get("/v1/me", headers=auth(key)).json()["credits"]["available"] == before - 1


def test_an_export_is_a_zip_of_the_images_with_their_metadata(client, service, alice_images):
    key = service[1]["alice"]
    ids = [r["image_id"] for r in client.get("/v1/history", headers=auth(key)).json()["data"][:2]]
    made = client.post("/v1/exports", headers=auth(key), json={"image_ids": ids})
    assert made.status_code == 201 and made.json()["images"] == 2
    archive = zipfile.ZipFile(io.BytesIO(client.get(made.json()["url"]).content))
    rows = list(csv.DictReader(io.StringIO(archive.read("metadata.csv").decode())))
    assert sorted(r["image_id"] for r in rows) == sorted(ids)
    assert all(archive.read(r["file"])[:4] == b"\x89PNG" for r in rows)
    assert client.post("/v1/exports", headers=auth(service[1]["bob"]), json={"image_ids": ids}).status_code == 404
    assert client.get(f"/v1/exports/{made.json()['id']}", headers=auth(service[1]["bob"])).status_code == 404


def test_a_deleted_image_is_gone_from_history_and_its_file_removed(client, service, alice_images):
    key = service[1]["alice"]
    row = client.get("/v1/history", headers=auth(key), params={"style": "line-art"}).json()["data"][0]
    assert client.delete(f"/v1/images/{row['image_id']}", headers=auth(service[1]["bob"])).status_code == 404
    assert client.delete(f"/v1/images/{row['image_id']}", headers=auth(key)).status_code == 204
    assert client.get(f"/v1/images/{row['image_id']}", headers=auth(key)).status_code == 404
    assert row["image_id"] not in [r["image_id"] for r in client.get("/v1/history", headers=auth(key)).json()["data"]]
    assert not list(alice_images.rglob(row["file_name"]))
    assert list((alice_images / "data/history").glob("part-*.parquet"))  # the log itself is untouched


def test_styles_come_with_thumbnails_rendered_once(client, service):
    key = service[1]["alice"]
    styles = client.get("/v1/styles", headers=auth(key)).json()["data"]
    assert len(styles) == 28
    first = client.get(styles[0]["thumbnail_url"])
    assert first.status_code == 200 and first.content[:4] == b"\x89PNG"
    assert client.get(styles[0]["thumbnail_url"]).content == first.content
    assert client.get("/v1/models", headers=auth(key)).json() == {"data": []}
