"""The service's jobs as Prefect flow runs: submitted to the `service-training` and `service-generation`
deployments (prefect.yaml; a worker on pool `boothline`, or `python -m flows.serve`, runs them), read back
by flow run id, cancelled through the server. The `gpu` tag limit keeps GPU stages from sharing a GPU.

Prefect states map onto job states: Scheduled/Pending/Paused are queued, Running is running, Completed is
succeeded, Failed is failed, Cancelling/Cancelled are canceled, and Crashed (the process running it died)
is crashed, which the job table answers by submitting the job again. A worker killed outright cannot report
its runs crashed: they stay Running. So a Running run whose process (Prefect's `infrastructure_pid`,
"host:pid") is gone from this host is marked Crashed here. (On other hosts, Prefect's own zombie-run
detection, an automation on missing heartbeats, does the same.)
"""

from __future__ import annotations

import os
import socket

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
    def submit(self, deployment: str, parameters: dict, key: str) -> str:
        from prefect.deployments import run_deployment

        # The idempotency key makes a resubmission after an API restart the same flow run, not a second one.
        flow_run = run_deployment(name=deployment, parameters=parameters, timeout=0, idempotency_key=key,
                                  tags=["boothline-service"])
        return str(flow_run.id)

    def state(self, flow_run_id: str) -> RunState:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
        state = run.state
        if state is None:
            return RunState("queued")
        status = STATES.get(state.type.value, "queued")
        if status == "running" and process_gone(run.infrastructure_pid):
            from prefect.states import Crashed

            message = f"its process {run.infrastructure_pid} is gone (the worker was stopped)"
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
            return RunState("crashed", message)
        return RunState(status, state.message)

    def cancel(self, flow_run_id: str) -> None:
        from prefect import get_client
        from prefect.states import Cancelling

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Cancelling(message="canceled through the boothline API"),
                                      force=True)
