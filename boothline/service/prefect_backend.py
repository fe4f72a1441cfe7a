"""The service's jobs as Prefect flow runs: submitted to the `service-training` and `service-generation`
deployments (prefect.yaml; a worker on pool `boothline`, or `python -m flows.serve`, runs them), read back
by flow run id, cancelled through the server. The `gpu` tag limit keeps GPU stages from sharing a GPU.

Prefect states map onto job states: Scheduled/Pending/Paused are queued, Running is running, Completed is
succeeded, Failed is failed, Cancelling/Cancelled are canceled, and Crashed (the process running it died)
is crashed, which the job table answers by submitting the job again. A worker killed outright cannot report
its runs crashed: they stay Running. The job table notices their heartbeat files going stale (flows.heartbeat)
and marks them Crashed through `crash`; where Prefect records a run's process (`infrastructure_pid`,
"host:pid", as workers do) and it is gone from this host, `state` does so at once.
"""

from __future__ import annotations

import os
import socket
import threading

from boothline.service.jobs import RunState

STATES = {"SCHEDULED": "queued", "PENDING": "queued", "PAUSED": "queued", "RUNNING": "running",
          "COMPLETED": "succeeded", "FAILED": "failed", "CANCELLING": "canceled", "CANCELLED": "canceled",
          "CRASHED": "crashed"}


def process_gone(infrastructure_pid: str | None) -> bool:
    """Whether a flow run's recorded process ("host:pid") was on this host and no longer exists."""
    host, _, pid = (infrastructure_pid or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class PrefectBackend:
    """Each thread keeps one open client: the job table reads every active run's state each second, and a
    new client costs a TLS context and a connection pool (it was a fifth of the API process's time under
    benchmarks/service_load.py)."""

    def __init__(self):
        self._local = threading.local()

    def client(self):
        from prefect import get_client

        if getattr(self._local, "client", None) is None:
            self._local.client = get_client(sync_client=True).__enter__()
        return self._local.client

    def close(self) -> None:
        """Close the calling thread's client (the job table's thread, as it stops)."""
        client, self._local.client = getattr(self._local, "client", None), None
        if client is not None:
            client.__exit__(None, None, None)

    def submit(self, deployment: str, parameters: dict, key: str) -> str:
        from prefect.deployments import run_deployment

        # The idempotency key makes a resubmission after an API restart the same flow run, not a second one.
        flow_run = run_deployment(name=deployment, parameters=parameters, timeout=0, idempotency_key=key,
                                  tags=["boothline-service"])
        return str(flow_run.id)

    def state(self, flow_run_id: str) -> RunState:
        run = self.client().read_flow_run(flow_run_id)
        state = run.state
        if state is None:
            return RunState("queued")
        status = STATES.get(state.type.value, "queued")
        if status == "running" and process_gone(run.infrastructure_pid):
            message = f"its process {run.infrastructure_pid} is gone (the worker was stopped)"
            self.crash(flow_run_id, message)
            return RunState("crashed", message)
        return RunState(status, state.message, run.start_time)

    def crash(self, flow_run_id: str, message: str) -> None:
        """Mark a dead flow run Crashed, and its unfinished task runs too. Crashing a task run releases the
        `gpu` slot it leased; a lease that already expired (its process died over a minute ago) is released by
        the Prefect server's repossessor service, so the next attempt waits at most one of its loops.
        (`reset_concurrency_limit_by_tag` must not be used for this: in Prefect 3.8 it revokes the leases of
        a tag without giving their slots back, so the limit stays full for good.)"""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.states import Crashed

        client = self.client()
        client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        for task_run in tasks:
            if task_run.state is None or not task_run.state.is_final():
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)

    def cancel(self, flow_run_id: str) -> None:
        from prefect.states import Cancelling

        self.client().set_flow_run_state(flow_run_id, Cancelling(message="canceled through the boothline API"),
                                         force=True)
