"""Prefect fixtures for tests/test_flows*.py, loaded there with `pytest_plugins = ["flows_fixtures"]`
(helpers they import live in flow_projects.py).

One temporary Prefect server (`prefect_test_harness`) serves the whole session: starting one costs about ten
seconds. PREFECT_HOME (settings, result storage, task cache records) lives in a temp directory, and the
server's URL is exported as PREFECT_API_URL so subprocesses (the prefect CLI, a worker, `flows.serve`)
talk to the same server.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[str]:
    """The API URL of the session's temporary Prefect server."""
    from prefect.settings import (PREFECT_API_URL, PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED,
                                  temporary_settings)
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    env = pytest.MonkeyPatch()
    env.setenv("PREFECT_HOME", str(home))
    env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        with temporary_settings(updates={PREFECT_HOME: str(home), PREFECT_SERVER_ANALYTICS_ENABLED: False}):
            started = time.perf_counter()
            with prefect_test_harness(server_startup_timeout=120):
                print(f"\nprefect_test_harness started in {time.perf_counter() - started:.1f} s")
                url = PREFECT_API_URL.value()
                env.setenv("PREFECT_API_URL", url)
                yield url
    finally:
        env.undo()


@pytest.fixture
def prefect_client(prefect_server):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        yield client
