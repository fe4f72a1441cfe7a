"""A bounded load test of `boothline serve` on loopback: status and history reads by many clients at once,
with the service idle and while one of its generations renders.

    .venv/bin/python benchmarks/service_load.py [--clients 50] [--users 3] [--seconds 20] [--images 200] [--history 50]

It starts the service the way `make serve` does (`python -m boothline.service.launch`: a Prefect server, the
service's deployments, the API) in a throwaway project on the tiny model, with the per-key rate limit raised
so the clients measure the service rather than the limiter (429s are still counted, apart). The first user
uploads the demo subject, trains a model at toy settings and generates `--history` images. Then `--clients`
clients without think time, each on its own keep-alive connection, spread over `--users` users and their
keys, alternately read a status (the first user's training; the others' `/v1/me`) and a history page for
`--seconds`: first idle, then while the first user's generation of `--images` images renders. One JSON line
per phase: requests/s, p50/p95/p99 latency by kind, counts of 429s, 5xx and dropped connections; the last
line checks the history afterwards: every image in it exactly once, none missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.project import emit, environment, project

# Toy settings: the training exists so that there is a model, a status to read and a generation to run.
FAST = {"priors": {"num_images": 2, "steps": 2, "batch_size": 2},
        "train": {"max_train_steps": 4, "checkpoint_every": 2, "validate_every": 2, "batch_size": 1},
        "eval": {"max_prompts": 1, "images_per_prompt": 1, "steps": 2, "fidelity_seeds": 1, "checkpoints": [2]},
        "register": {"thresholds": {}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "boothline.cli", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def wait_until_done(client: httpx.Client, url: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(1)
    raise SystemExit(f"{url} still not done after {timeout:.0f} s")


def history_ids(client: httpx.Client) -> list[str]:
    ids, cursor = [], None
    while True:
        page = client.get("/v1/history", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        ids += [row["image_id"] for row in page["data"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids


class Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads status, headers and a Content-Length body.
    The clients are this lean because httpx's pool, shared by 50 concurrent requests, measured itself: on
    these 2 cores it managed 86 requests/s of `/health`, against 700 from these connections."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.streams = host, port, None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{lines}\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            self.streams = None
            raise ConnectionError("the server closed the connection")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def hammer(base: str, keys: list[str], status_url: str, clients: int, seconds: float,
                 still: Callable[[], bool] = lambda: True) -> dict:
    """`clients` loops, each on its own connection and one user's key, alternating a status read (the first
    user: the training's status; the others: their account's) and a history page, until `seconds` pass or
    `still()` is false."""
    host, port = base.removeprefix("http://").split(":")
    latencies: dict[str, list[float]] = {"status": [], "history": []}
    codes: dict[int, int] = {}
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def one(index: int) -> None:
        key = keys[index % len(keys)]
        headers = {"Authorization": f"Bearer {key}"}
        status = status_url if key == keys[0] else "/v1/me"
        connection = Connection(host, int(port))
        turn = index
        while time.monotonic() < deadline and still():
            kind = "status" if turn % 2 == 0 else "history"
            turn += 1
            start = time.perf_counter()
            try:
                code = await connection.get(status if kind == "status" else "/v1/history", headers)
            except (OSError, asyncio.IncompleteReadError) as error:  # counted apart, like a 5xx
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                connection = Connection(host, int(port))
                continue
            latencies[kind].append(time.perf_counter() - start)
            codes[code] = codes.get(code, 0) + 1
        connection.close()

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    total = sum(codes.values())
    report = {"requests": total, "requests_per_s": round(total / elapsed, 1), "seconds": round(elapsed, 1),
              "http_429": codes.get(429, 0), "http_5xx": sum(n for c, n in codes.items() if c >= 500),
              "connection_errors": errors,
              "other_codes": {str(c): n for c, n in codes.items() if c not in (200, 429) and c < 500}}
    for kind, values in latencies.items():
        if values:
            ms = np.asarray(values) * 1000
            report[kind] = {"p50_ms": round(float(np.percentile(ms, 50)), 1),
                            "p95_ms": round(float(np.percentile(ms, 95)), 1),
                            "p99_ms": round(float(np.percentile(ms, 99)), 1)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--images", type=int, default=200, help="images the generation renders during the busy phase")
    parser.add_argument("--history", type=int, default=50, help="images in the first user's history before the load")
    args = parser.parse_args()
    overrides = {**FAST, "service": {"requests_per_minute": 1_000_000, "max_queued_jobs": 5}}
    with project(overrides):
        port, prefect_port = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        with open("serve.log", "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "boothline.service.launch", "--port", str(port),
                                       "--prefect-port", str(prefect_port)], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            try:
                run(args, f"http://127.0.0.1:{port}", server)
            except BaseException:
                print(f"--- serve.log (tail) ---\n{Path('serve.log').read_text()[-4000:]}", file=sys.stderr)
                raise
            finally:
                server.terminate()  # launch stops its children on SIGTERM
                server.wait(60)


def run(args, base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            httpx.get(f"{base}/health", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the service did not start:\n{Path('serve.log').read_text()[-3000:]}")
            time.sleep(1)
    keys = []
    for i in range(args.users):
        cli("users", "create", f"user{i}", "--daily-credits", "1000")
        keys.append(re.split(r"\s+", cli("keys", "create", f"user{i}"))[-1])
    owner = httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {keys[0]}"})
    demo = sorted(Path("data/subjects/demo").glob("*.png"))
    subject = owner.post("/v1/subjects", data={"token": "sks", "class_noun": "toy", "kind": "object"},
                         files=[("photos", (p.name, p.read_bytes(), "image/png")) for p in demo])
    subject.raise_for_status()
    training = owner.post("/v1/trainings", json={"subject": subject.json()["id"], "settings": {}})
    training.raise_for_status()
    status_url = f"/v1/trainings/{training.json()['id']}"
    trained = wait_until_done(owner, status_url)
    if trained["status"] != "succeeded":
        raise SystemExit(f"the training {trained['status']}:\n{Path('serve.log').read_text()[-3000:]}")
    model = f"models:/{owner.get('/v1/models').json()['data'][0]['name']}@candidate"
    generate(owner, model, "{subject} in the snow", args.history)  # so that history reads return full pages
    emit({"phase": "idle", "clients": args.clients, "users": args.users, "history_images": args.history,
          **environment(), **asyncio.run(hammer(base, keys, status_url, args.clients, args.seconds))})

    generation_url = submit_generation(owner, model, "{subject} on the beach", args.images)
    while owner.get(generation_url).json()["status"] == "queued":
        time.sleep(0.5)
    rendering = {"running": True}

    async def busy() -> dict:
        async def watch() -> None:
            async with httpx.AsyncClient(base_url=base, headers=owner.headers) as watcher:
                while rendering["running"]:
                    rendering["running"] = (await watcher.get(generation_url)).json()["status"] == "running"
                    await asyncio.sleep(0.5)

        watching = asyncio.create_task(watch())
        report = await hammer(base, keys, status_url, args.clients, args.seconds, still=lambda: rendering["running"])
        rendering["running"] = False
        await watching
        return report

    emit({"phase": "rendering", "clients": args.clients, "users": args.users, **asyncio.run(busy())})
    done = finished(owner, generation_url)
    ids = history_ids(owner)
    emit({"phase": "after", "images_made": len(done["result"]["image_ids"]), "history_rows": len(ids),
          "history_unique": len(set(ids)), "expected_rows": args.history + args.images,
          "all_images_in_history": set(done["result"]["image_ids"]) <= set(ids)})


def submit_generation(owner: httpx.Client, model: str, prompt: str, images: int) -> str:
    answer = owner.post("/v1/generations", json={"model": model, "styles": ["anime"], "prompts": [prompt],
                                                 "seeds": images})
    answer.raise_for_status()
    return f"/v1/generations/{answer.json()['id']}"


def finished(owner: httpx.Client, url: str) -> dict:
    done = wait_until_done(owner, url)
    if done["status"] != "succeeded":
        shown = {k: v for k, v in done.items() if k != "progress"}
        raise SystemExit(f"the generation {done['status']}: {json.dumps(shown)}")
    return done


def generate(owner: httpx.Client, model: str, prompt: str, images: int) -> dict:
    return finished(owner, submit_generation(owner, model, prompt, images))


if __name__ == "__main__":
    main()
