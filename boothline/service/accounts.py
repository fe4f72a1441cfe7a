"""Users and API keys. A key is a random 256-bit token shown once; the store keeps its SHA-256 only, and a
presented token is looked up by its hash and compared in constant time. A fast hash suffices for
high-entropy tokens (nothing to brute-force), and costs every request nothing."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from boothline.errors import StageError
from boothline.service.store import ApiKey, Store, User, utcnow

TOKEN_PREFIX = "bl_"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AccountError(StageError):
    """A user or key that does not exist, or a name that cannot be used."""


@dataclass(frozen=True)
class Account:
    user_id: int
    name: str
    key_id: str | None = None


# Built once: every request runs it, and building the statement cost as much as running it.
KEY_LOOKUP = (select(ApiKey.sha256, ApiKey.revoked_at, ApiKey.id, User.id, User.name)
              .join(User, User.id == ApiKey.user_id).where(ApiKey.sha256 == bindparam("digest")))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(store: Store, name: str, daily_credits: int) -> Account:
    if not USER_NAME.fullmatch(name):
        raise AccountError(f"user name {name!r}: letters, digits, '.', '_' and '-', at most 64, starting with a "
                           f"letter or digit")
    if daily_credits < 0:
        raise AccountError(f"--daily-credits {daily_credits}: must be 0 or more")
    with store.writing() as session:
        if session.scalar(select(User).where(User.name == name)):
            raise AccountError(f"user {name!r}: already exists")
        user = User(name=name, daily_credits=daily_credits, granted_credits=0, daily_used=0, daily_day="")
        session.add(user)
        session.flush()
        return Account(user.id, user.name)


def find_user(session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"user {name!r}: no such user (`boothline users create {name}`)")
    return user


def create_key(store: Store, name: str) -> tuple[str, str]:
    """(key id, token) for a new key of user `name`; the token is not kept and cannot be shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.writing() as session:
        user = find_user(session, name)
        key = ApiKey(id=secrets.token_hex(8), user_id=user.id, sha256=token_hash(token))
        session.add(key)
        return key.id, token


def revoke_key(store: Store, key_id: str) -> None:
    with store.writing() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            raise AccountError(f"key {key_id!r}: no such key")
        if key.revoked_at is None:
            key.revoked_at = utcnow()


def authenticate(store: Store, token: str) -> Account | None:
    """The account a bearer token belongs to, or None for an unknown or revoked one."""
    digest = token_hash(token)
    with store.reading() as session:
        row = session.execute(KEY_LOOKUP, {"digest": digest}).first()
    if row is None:
        hmac.compare_digest(digest, "0" * 64)  # the same work whether or not the key exists
        return None
    sha256, revoked_at, key_id, user_id, name = row
    if not hmac.compare_digest(sha256, digest) or revoked_at is not None:
        return None
    return Account(user_id, name, key_id)
