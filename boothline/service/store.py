"""The service's database: SQLAlchemy over sqlite by default (WAL, one writer at a time), any SQLAlchemy URL
for a team. `writing(...)` sessions take the write lock when they begin (sqlite: BEGIN IMMEDIATE; elsewhere,
callers lock rows with `with_for_update`), so a check-then-write such as a credits hold cannot race.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, TypeDecorator, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timestamps stored naive in UTC (sqlite keeps no zone) and read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    daily_credits: Mapped[int] = mapped_column(Integer)
    granted_credits: Mapped[int] = mapped_column(Integer, default=0)
    daily_used: Mapped[int] = mapped_column(Integer, default=0)  # of the free allowance, on `daily_day`
    daily_day: Mapped[str] = mapped_column(String(10), default="")  # ISO date (UTC) daily_used counts for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # shown, never secret
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the token; the token is never stored
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Hold(Base):
    """Credits set aside for one job when it is accepted; charged for what it produced, the rest released."""

    __tablename__ = "holds"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    charged: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None while held
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Subject(Base):
    """A user's validated photos of one subject, in its own workspace (`root/users/<user>/subjects/<id>/`)."""

    __tablename__ = "subjects"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token: Mapped[str] = mapped_column(String(64))
    class_noun: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    photos: Mapped[list] = mapped_column(JSON)  # [{"name": client's name, "file": stored name, "bytes": n}]
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "canceled")


class Job(Base):
    """One training or generation, mapped to the Prefect flow run doing it (a new one per attempt)."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # training | generation
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    input: Mapped[dict] = mapped_column(JSON)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    workspace: Mapped[str] = mapped_column(String(500))
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    credits_held: Mapped[int] = mapped_column(Integer, default=0)
    webhook: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    webhook_sent: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every change: what event streams follow
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Deletion(Base):
    """An image the user deleted: its file is gone and history hides it; the append-only log keeps its row."""

    __tablename__ = "deletions"
    image_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Store:
    def __init__(self, url: str):
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {})
        if sqlite:
            self._sqlite_transactions()
        Base.metadata.create_all(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(boothline_write=True), expire_on_commit=False)

    def _sqlite_transactions(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, begins transactions
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _begin(connection):
            write = connection.get_execution_options().get("boothline_write")
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session


def open_store(url: str | None, root: Path) -> Store:
    if url is None:
        root.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{root / 'boothline.db'}"
    return Store(url)
