"""A user's images: their history log read incrementally (the log only ever gains files, so each request
reads just the files that appeared since the last one), minus what the user deleted, kept as a listing that
a page of history slices."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import bindparam, func, select

from boothline.generation.history import COLUMNS, history_files, query, read_history
from boothline.service.errors import not_found
from boothline.service.store import Deletion


class HistoryIndex:
    def __init__(self):
        self._frames: dict[Path, tuple[frozenset[Path], pd.DataFrame]] = {}
        self._lock = threading.Lock()
        self._empty = (frozenset(), pd.DataFrame(columns=COLUMNS))  # built once: a polled read must stay cheap

    def frame(self, directory: Path) -> pd.DataFrame:
        with self._lock:
            seen, frame = self._frames.get(directory, self._empty)
            new = [p for p in history_files(directory) if p not in seen]
            if new:
                added = read_history(directory, new)
                frame = added if frame.empty else pd.concat([frame, added], ignore_index=True)
                seen = seen | frozenset(new)
                self._frames[directory] = (seen, frame)
            return frame


def plain(value):
    """A history value as JSON has it."""
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return None if value is pd.NA or (isinstance(value, float) and value != value) else value


def image_record(row: dict) -> dict:
    """A history row as the API shows it (without its signed URL): JSON values, the file's name only."""
    return {k: plain(v) for k, v in row.items() if k != "file"} | {"file_name": Path(row["file"]).name}


@dataclass(frozen=True)
class Listing:
    """A user's images newest first, one row per image id (a regenerated or resumed image is listed once),
    deletions left out. `frame` is for filtering (its index is the position); `records` holds each row as
    JSON values and `keys` its (created_at, image_id) order, so that a page of polled history is a slice."""

    frame: pd.DataFrame
    records: list[dict]
    keys: list[tuple[pd.Timestamp, str]]
    positions: dict[str, int]

    @classmethod
    def of(cls, frame: pd.DataFrame, deleted: set[str]) -> Listing:
        kept = frame[~frame.image_id.isin(deleted)].drop_duplicates("image_id", keep="last")
        kept = kept.sort_values(["created_at", "image_id"], ascending=False, kind="stable").reset_index(drop=True)
        records = [image_record(row) for row in kept.to_dict("records")]
        keys = list(zip(kept.created_at, kept.image_id))
        return cls(kept, records, keys, {image_id: i for i, image_id in enumerate(kept.image_id)})

    def matching(self, **filters) -> list[int]:
        """Positions of the images matching history.query's filters, newest first."""
        if not any(filters.values()):
            return list(range(len(self.records)))
        return sorted(query(self.frame, **filters).index)


DELETIONS = select(func.count()).select_from(Deletion).where(Deletion.user_id == bindparam("user_id"))  # per page


class Gallery:
    def __init__(self, state):
        self.state, self.index = state, HistoryIndex()
        self._listings: dict[int, tuple[pd.DataFrame, int, Listing]] = {}  # user -> (log frame, deletions, listing)

    def history_dir(self, user_id: int) -> Path:
        return self.state.user_root(user_id) / "data" / "history"

    def deleted(self, user_id: int) -> set[str]:
        with self.state.store.reading() as session:
            return set(session.scalars(select(Deletion.image_id).where(Deletion.user_id == user_id)))

    def listing(self, user_id: int) -> Listing:
        """The user's listing, built again only once their log has grown or they deleted an image (deletions
        only ever grow, so their count says whether they changed)."""
        frame = self.index.frame(self.history_dir(user_id))
        with self.state.store.reading() as session:
            deletions = session.scalar(DELETIONS, {"user_id": user_id})
        cached = self._listings.get(user_id)
        if cached is None or cached[0] is not frame or cached[1] != deletions:
            cached = (frame, deletions, Listing.of(frame, self.deleted(user_id) if deletions else set()))
            self._listings[user_id] = cached
        return cached[2]

    def row(self, user_id: int, image_id: str) -> dict:
        listing = self.listing(user_id)
        if image_id not in listing.positions:
            raise not_found("image", image_id)
        row = listing.frame.iloc[listing.positions[image_id]].to_dict()
        path = Path(row["file"])
        if self.state.user_root(user_id).resolve() not in path.resolve().parents:
            raise not_found("image", image_id)  # a row pointing outside the user's files is not served
        return row

    def delete(self, user_id: int, image_id: str) -> None:
        row = self.row(user_id, image_id)
        with self.state.store.writing() as session:
            session.merge(Deletion(image_id=image_id, user_id=user_id, deleted_at=self.state.clock()))
        Path(row["file"]).unlink(missing_ok=True)
