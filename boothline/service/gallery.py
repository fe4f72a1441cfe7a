"""A user's images: their history log read incrementally (the log only ever gains files, so each request
reads just the files that appeared since the last one), minus what the user deleted."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
from sqlalchemy import select

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


class Gallery:
    def __init__(self, state):
        self.state, self.index = state, HistoryIndex()

    def history_dir(self, user_id: int) -> Path:
        return self.state.user_root(user_id) / "data" / "history"

    def deleted(self, user_id: int) -> set[str]:
        with self.state.store.reading() as session:
            return set(session.scalars(select(Deletion.image_id).where(Deletion.user_id == user_id)))

    def rows(self, user_id: int, **filters) -> pd.DataFrame:
        """The user's images matching `filters` (history.query's), newest first, one row per image id."""
        frame = self.index.frame(self.history_dir(user_id))
        if frame.empty:
            return frame
        found = query(frame, **filters)
        found = found[~found.image_id.isin(self.deleted(user_id))]
        found = found.drop_duplicates("image_id", keep="last")  # a regenerated or resumed image is listed once
        return found.sort_values(["created_at", "image_id"], ascending=False, kind="stable")

    def row(self, user_id: int, image_id: str) -> dict:
        found = self.rows(user_id, image_id=image_id) if len(image_id) == 16 else pd.DataFrame()
        found = found[found.image_id == image_id] if not found.empty else found
        if found.empty:
            raise not_found("image", image_id)
        row = found.iloc[0].to_dict()
        path = Path(row["file"])
        if self.state.user_root(user_id).resolve() not in path.resolve().parents:
            raise not_found("image", image_id)  # a row pointing outside the user's files is not served
        return row

    def delete(self, user_id: int, image_id: str) -> None:
        row = self.row(user_id, image_id)
        with self.state.store.writing() as session:
            session.merge(Deletion(image_id=image_id, user_id=user_id, deleted_at=self.state.clock()))
        Path(row["file"]).unlink(missing_ok=True)
