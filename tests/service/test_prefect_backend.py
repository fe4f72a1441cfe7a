"""The Prefect backend's own judgement: a run whose process died is crashed, and crashing it frees the tag
concurrency slot it held (the flow runs themselves are tested end to end with a real server)."""

from __future__ import annotations

pytest_plugins = ["flows_fixtures"]


def test_a_run_whose_process_is_gone_from_this_host_counts_as_crashed():
    import os
    import socket

    from boothline.service.prefect_backend import process_gone

    here = socket.gethostname()
    assert not process_gone(f"{here}:{os.getpid()}")
    assert process_gone(f"{here}:{2**22 + 12345}")  # above Linux's default pid_max: never a live process
    assert not process_gone("another-host:1") and not process_gone(None) and not process_gone("garbage")


HOLDER = """
import time
from prefect import flow, task

@task(tags=["crash-test"])
def hold():
    time.sleep(600)

@flow
def holding():
    hold()

holding()
"""


def test_crashing_a_killed_run_gives_its_tag_slot_back(prefect_client, prefect_server, tmp_path):
    """A killed process cannot give back the slot its task leased; `crash` does, so the next attempt can run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterTags

    from boothline.service.prefect_backend import PrefectBackend

    prefect_client.create_concurrency_limit(tag="crash-test", concurrency_limit=1)
    (tmp_path / "holder.py").write_text(HOLDER)
    process = subprocess.Popen([sys.executable, "holder.py"], cwd=tmp_path, start_new_session=True,
                               env={**os.environ, "PREFECT_API_URL": prefect_server},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tagged = TaskRunFilter(tags=TaskRunFilterTags(all_=["crash-test"]))
    deadline = time.monotonic() + 120
    while not (running := [t for t in prefect_client.read_task_runs(task_run_filter=tagged) if t.state.is_running()]):
        assert time.monotonic() < deadline and process.poll() is None, "the holding task never ran"
        time.sleep(0.5)
    slots = prefect_client.read_global_concurrency_limit_by_name("tag:crash-test")
    assert slots.active_slots == 1
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)

    PrefectBackend().crash(str(running[0].flow_run_id), "killed by the test")
    assert prefect_client.read_task_run(running[0].id).state.is_crashed()
    assert prefect_client.read_flow_run(running[0].flow_run_id).state.is_crashed()
    assert prefect_client.read_global_concurrency_limit_by_name("tag:crash-test").active_slots == 0
