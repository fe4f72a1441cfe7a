"""The gallery's listing of a user's images: newest first, one row per image, deletions left out, and built
again only when the log gains a file or the user deletes an image (a polled page is a slice of it)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from generation.test_history import row

from boothline.generation.history import append_rows
from boothline.service.accounts import create_user
from boothline.service.gallery import Gallery
from boothline.service.store import open_store


def gallery_for(tmp_path) -> Gallery:
    store = open_store(None, tmp_path)
    create_user(store, "alice", 50)
    state = SimpleNamespace(store=store, user_root=lambda user_id: tmp_path / str(user_id),
                            clock=lambda: dt.datetime.now(dt.timezone.utc))
    return Gallery(state)


def at(minute: int) -> dt.datetime:
    return dt.datetime(2026, 11, 20, 12, minute, tzinfo=dt.timezone.utc)


def test_the_listing_is_newest_first_and_rebuilt_only_when_the_log_or_the_deletions_change(tmp_path):
    gallery = gallery_for(tmp_path)
    log = gallery.history_dir(1)
    append_rows([row(0, created_at=at(0)), row(1, created_at=at(1), style="watercolor")], log)
    first = gallery.listing(1)
    assert [r["image_id"] for r in first.records] == [f"{1:016x}", f"{0:016x}"]
    assert first.records[0]["created_at"] == "2026-11-20T12:01:00+00:00" and "file" not in first.records[0]
    assert gallery.listing(1) is first  # nothing changed: the same listing
    assert first.matching(style="watercolor") == [0] and first.matching() == [0, 1]

    image = tmp_path / "1" / "image-2.png"
    image.write_bytes(b"png")
    append_rows([row(2, created_at=at(2), file=str(image)), row(0, created_at=at(3))], log)  # image 0 again: a regenerated image
    grown = gallery.listing(1)
    assert grown is not first
    assert [r["image_id"] for r in grown.records] == [f"{0:016x}", f"{2:016x}", f"{1:016x}"]  # listed once

    gallery.delete(1, f"{2:016x}")
    assert not image.exists()
    after = gallery.listing(1)
    assert [r["image_id"] for r in after.records] == [f"{0:016x}", f"{1:016x}"]
    assert gallery.listing(2).records == []  # another user: their own (empty) log
