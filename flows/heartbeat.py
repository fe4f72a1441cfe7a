"""A running flow run's heartbeat: a file in its workspace touched every few seconds, removed at the end.

A worker killed outright cannot report its runs crashed (Prefect keeps them Running), but their heartbeat
stops: a watcher that shares the disk (the service's job table) takes a stale one for a crash.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from boothline.paths import Workspace

EVERY_SECONDS = 5


@contextlib.contextmanager
def beating(workspace: str | Path):
    from prefect.runtime import flow_run

    run_id = flow_run.id
    if not run_id:  # not inside a flow run (a test calling the function): nothing to watch
        yield
        return
    path = Workspace(Path(workspace)).flow_run_heartbeat(str(run_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            path.write_text(f"{time.time():.0f}\n")
            stop.wait(EVERY_SECONDS)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(EVERY_SECONDS + 1)
        path.unlink(missing_ok=True)
