"""`make serve`: everything `boothline serve` needs, in one command, on loopback; Ctrl-C stops all of it.

    python -m boothline.service.launch [--port 8000] [--prefect-port 4200] [--params params.yaml]

1. a Prefect server (`prefect server start`, its state under data/service/prefect/),
2. the service's two deployments served from one process (`python -m flows.serve --names ...`),
3. the API (`boothline serve`), pointed at that server.
If any of them exits, the others are stopped too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVICE_DEPLOYMENTS = "service-training,service-generation"


def wait_for(url: str, what: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{what} not ready at {url} after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boothline.service.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="the API's port (default: 8000)")
    parser.add_argument("--prefect-port", type=int, default=4200, help="the Prefect server's port (default: 4200)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    prefect_url = f"http://127.0.0.1:{args.prefect_port}/api"
    env = {**os.environ, "PREFECT_API_URL": prefect_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(Path("data/service/prefect").absolute())),
           "TRANSFORMERS_VERBOSITY": "error"}
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    python = sys.executable
    children: list[subprocess.Popen] = []

    def start(*cmd: str) -> subprocess.Popen:
        children.append(subprocess.Popen(list(cmd), env=env, start_new_session=True))
        return children[-1]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = start(python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(args.prefect_port))
    wait_for(f"{prefect_url}/health", "the Prefect server", server)
    print(f"[serve] Prefect server: http://127.0.0.1:{args.prefect_port}", flush=True)
    start(python, "-m", "flows.serve", "--names", SERVICE_DEPLOYMENTS)
    api = start(python, "-m", "boothline.cli", "--params", args.params, "serve", "--port", str(args.port))
    wait_for(f"http://127.0.0.1:{args.port}/health", "the API", api)
    print(f"[serve] boothline API: http://127.0.0.1:{args.port} (docs: /docs); Ctrl-C stops everything", flush=True)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    failed = next(child for child in children if child.poll() is not None)
    print(f"[serve] {' '.join(failed.args[:4])} exited with {failed.returncode}; stopping the rest", flush=True)
    stop()
    return 1


if __name__ == "__main__":
    sys.exit(main())
