"""The lock (requirements/*.txt, made by `make lock`) is what installs: its files agree, it satisfies
pyproject.toml, and the project's .venv holds exactly its versions (a stale .venv fails here)."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
RUN_LOCK, TEST_LOCK = REPO / "requirements/run.txt", REPO / "requirements/test.txt"
INSTALLER_LOCK = REPO / "requirements/installer.txt"
VENV = REPO / ".venv"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def pins(lock: Path) -> dict[str, str]:
    """name -> version of every package the lock pins."""
    found = (PIN.match(line) for line in lock.read_text().splitlines())
    return {canonicalize_name(m[1]): m[2] for m in found if m}


def hashed_entries(lock: Path) -> dict[str, frozenset[str]]:
    """name -> the sha256 hashes the lock allows for it."""
    entries, name = {}, None
    for line in lock.read_text().splitlines():
        if m := PIN.match(line):
            name = canonicalize_name(m[1])
            entries[name] = frozenset()
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            entries[name] |= {digest}
    return entries


def test_every_locked_package_is_pinned_with_hashes():
    for lock in (RUN_LOCK, TEST_LOCK):
        entries = hashed_entries(lock)
        assert {"pip", "setuptools", "torch", "transformers", "peft"} <= set(entries), lock.name
        assert all(entries.values()), [name for name, hashes in entries.items() if not hashes]


def test_the_run_lock_is_the_test_lock_without_the_extras():
    run, full = hashed_entries(RUN_LOCK), hashed_entries(TEST_LOCK)
    assert {name: pins(RUN_LOCK)[name] for name in run} == {name: pins(TEST_LOCK)[name] for name in run}
    assert all(run[name] == full[name] for name in run)
    assert {"pytest", "prefect-dask", "prefect-ray", "ray"} <= set(full) - set(run)


def test_the_installer_pip_bootstraps_is_the_locks_uv():
    installer, full = hashed_entries(INSTALLER_LOCK), hashed_entries(TEST_LOCK)
    assert set(installer) == {"uv"} and installer["uv"] == full["uv"]
    assert pins(INSTALLER_LOCK)["uv"] == pins(TEST_LOCK)["uv"] == pins(RUN_LOCK)["uv"]


def test_the_lock_satisfies_pyproject():
    """An edit of pyproject.toml without `make lock` fails here, not in a user's install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    locked = pins(TEST_LOCK)
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in ("dask", "ray", "test"):
        wanted += project["project"]["optional-dependencies"][extra]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{text}: not in {TEST_LOCK.name}; run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), \
            f"{text}: the lock has {name}=={locked[name]}; run `make lock`"


def test_the_project_venv_holds_the_locked_versions():
    if Path(sys.prefix).resolve() != VENV.resolve():
        pytest.skip("not running in the project's .venv")
    lock = TEST_LOCK if (VENV / ".installed-test").exists() else RUN_LOCK
    stale = []
    for name, pinned in sorted(pins(lock).items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            stale.append(f"{name} is not installed (the lock has {pinned})")
            continue
        if installed != pinned:
            stale.append(f"{name} {installed} is installed, the lock has {pinned}")
    assert not stale, (f".venv differs from {lock.relative_to(REPO)}: " + "; ".join(stale)
                       + ". Run `make install` (`make install-test` for the tests' packages)")
