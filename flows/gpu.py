"""GPU safety: every GPU-heavy task carries the tag `gpu`, and a Prefect tag concurrency limit on that tag lets
only so many of them run at once, whichever flows they belong to (a nightly batch and a retrain never share
one GPU). Without a limit on the server the tag does nothing, so the flows and `python -m flows.serve` create
it with one slot when the server has none:

    prefect concurrency-limit create gpu 1      # by hand; `prefect concurrency-limit ls` shows it

Prefect counts slots per tag across the whole server, not per machine: with N GPU workers, set it to N
(`prefect concurrency-limit create gpu N` replaces the limit; a limit that exists is never changed here).
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

GPU_TAG = "gpu"
DEFAULT_GPU_SLOTS = 1


def ensure_gpu_limit(slots: int = DEFAULT_GPU_SLOTS) -> int:
    """The number of slots the server allows tasks tagged `gpu`; creates the limit with `slots` if missing."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_concurrency_limit_by_tag(GPU_TAG).concurrency_limit
        except ObjectNotFound:
            client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)
            return slots
