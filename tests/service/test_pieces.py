"""The service's building blocks: signed URLs, upload checks, the rate limiter, the settings allow-list."""

from __future__ import annotations

import io

import pytest
from conftest import REPO
from PIL import Image

from boothline.params import Uploads, load_params
from boothline.service.limits import RateLimiter, retry_after
from boothline.service.settings_schema import SettingsError, apply_settings, describe
from boothline.service.signing import Signer, load_secret
from boothline.service.uploads import Refusal, Upload, check_uploads, display_name, stored_name

ALLOW = ("priors.num_images", "train.max_train_steps", "train.learning_rate", "train.lora.*")


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def png(width=8, height=8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buf, "PNG")
    return buf.getvalue()


def test_a_signed_url_works_for_its_user_and_path_until_it_expires(tmp_path):
    clock = Clock()
    signer = Signer(load_secret(tmp_path), lifetime=60, clock=clock)
    url = signer.sign(7, "/v1/images/abc")
    path, query = url.split("?")
    args = dict(part.split("=") for part in query.split("&"))
    assert signer.verify(path, args["u"], args["exp"], args["sig"]) == 7
    assert signer.verify("/v1/images/other", args["u"], args["exp"], args["sig"]) is None  # another resource
    assert signer.verify(path, "8", args["exp"], args["sig"]) is None  # another user
    assert signer.verify(path, args["u"], str(int(args["exp"]) + 60), args["sig"]) is None  # a longer life
    clock.t += 61
    assert signer.verify(path, args["u"], args["exp"], args["sig"]) is None  # expired
    assert load_secret(tmp_path) == load_secret(tmp_path) and (tmp_path / "signing.key").stat().st_mode & 0o077 == 0


def test_client_file_names_never_become_paths():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("/abs/path/x.png") == "x.png"
    assert display_name("a\x00b.png") == "ab.png" and display_name("..\\..\\win.png") == "win.png"
    assert stored_name(3, Upload("../../evil.png", png()), Uploads()) == "photo-03.png"
    assert stored_name(4, Upload("notes.png", b"not an image"), Uploads()) == "photo-04.bin"


def test_upload_limits_are_checked_on_bytes_and_headers_before_decoding():
    limits = Uploads(max_file_mb=0.001, max_files=3, max_total_mb=0.002, max_pixels=64 * 64)
    with pytest.raises(Refusal) as too_many:
        check_uploads([Upload(f"{i}.png", b"x") for i in range(4)], limits)
    assert too_many.value.status == 413 and "at most 3" in too_many.value.reason
    with pytest.raises(Refusal, match="") as big:
        check_uploads([Upload("big.png", b"x" * 2000)], limits)
    assert big.value.field == "big.png"
    bomb = png(4000, 4000)  # small on disk, 16 megapixels once decoded
    with pytest.raises(Refusal) as refused:
        stored_name(1, Upload("bomb.png", bomb), limits)
    assert refused.value.status == 413 and "pixels" in refused.value.reason


def test_the_rate_limiter_refuses_past_the_budget_and_says_when_to_retry():
    clock = Clock(0)
    limiter = RateLimiter(2, clock=clock)
    assert limiter.take("k") == 0 and limiter.take("k") == 0
    wait = limiter.take("k")
    assert wait > 0 and retry_after(wait) == "30"
    assert limiter.take("other") == 0  # per key
    clock.t += 30
    assert limiter.take("k") == 0


def test_settings_outside_the_allow_list_or_range_are_refused_by_name():
    params = load_params(REPO / "params.yaml")
    changed = apply_settings(params, {"train.max_train_steps": 50, "train.lora": {"enabled": True}}, ALLOW)
    assert changed.train.max_train_steps == 50 and changed.train.lora.enabled
    with pytest.raises(SettingsError) as outside:
        apply_settings(params, {"model.base": "/etc"}, ALLOW)
    assert outside.value.field == "settings.model.base"
    with pytest.raises(SettingsError) as out_of_range:
        apply_settings(params, {"priors.num_images": -1}, ALLOW)
    assert out_of_range.value.field == "settings.priors.num_images"


def test_the_settings_schema_gives_type_range_and_default():
    params = load_params(REPO / "params.yaml")
    entries = {e["key"]: e for e in describe(params, ALLOW)}
    assert entries["priors.num_images"] == {"key": "priors.num_images", "type": "integer", "default": 8,
                                            "minimum": 0, "maximum": 100_000}
    assert entries["train.lora.rank"]["minimum"] == 1 and "train.lora.enabled" in entries
