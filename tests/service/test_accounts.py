"""Users and API keys: tokens shown once and stored as their SHA-256, revocation, clear errors."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from boothline.service.accounts import AccountError, authenticate, create_key, create_user, revoke_key, token_hash
from boothline.service.store import ApiKey, open_store


@pytest.fixture
def store(tmp_path):
    return open_store(None, tmp_path / "service")


def test_a_key_authenticates_its_user_until_revoked(store):
    alice = create_user(store, "alice", 50)
    key_id, token = create_key(store, "alice")
    assert token.startswith("bl_") and len(token) > 40
    assert authenticate(store, token) == type(alice)(alice.user_id, "alice", key_id)
    assert authenticate(store, token + "x") is None and authenticate(store, "") is None
    revoke_key(store, key_id)
    assert authenticate(store, token) is None


def test_only_the_hash_of_a_token_is_stored(store):
    create_user(store, "bob", 10)
    _, token = create_key(store, "bob")
    with store.reading() as session:
        stored = session.scalars(select(ApiKey.sha256)).all()
    assert stored == [token_hash(token)]
    database = store.url.removeprefix("sqlite:///")
    files = [database, database + "-wal"]  # WAL mode: recent writes sit in the -wal file
    assert not any(token.encode() in open(f, "rb").read() for f in files if os.path.exists(f))


def test_bad_names_and_unknown_users_and_keys_are_clear_errors(store):
    create_user(store, "carol", 5)
    with pytest.raises(AccountError, match="'carol': already exists"):
        create_user(store, "carol", 5)
    with pytest.raises(AccountError, match="user name '../x'"):
        create_user(store, "../x", 5)
    with pytest.raises(AccountError, match="user 'dave': no such user"):
        create_key(store, "dave")
    with pytest.raises(AccountError, match="key 'nope': no such key"):
        revoke_key(store, "nope")


def test_the_admin_commands_create_users_and_keys_and_print_the_key_last(tmp_path, monkeypatch, capsys):
    import shutil

    from conftest import REPO

    from boothline.cli import main

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["users", "create", "alice", "--daily-credits", "30"]) == 0
    assert main(["users", "grant", "alice", "7"]) == 0
    assert main(["keys", "create", "alice"]) == 0
    token = capsys.readouterr().out.split()[-1]
    store = open_store(None, tmp_path / "data/service")
    assert authenticate(store, token).name == "alice"
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out == "alice\t30\t37\n"
    assert main(["keys", "create", "nobody"]) == 1
    assert "user 'nobody': no such user" in capsys.readouterr().err
