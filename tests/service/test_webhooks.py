"""Webhooks: signed with the service secret, retried on 5xx, never sent to a host not allowed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from boothline.service.webhooks import deliver, signature


@pytest.fixture
def receiver():
    """A loopback HTTP server answering 503 for its first `fail` requests, then 204; records each body."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(503 if len(got) <= server.fail else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.fail = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, got
    server.shutdown()


def test_a_webhook_is_signed_and_retried_until_delivered(receiver):
    server, got = receiver
    server.fail = 2
    job = {"id": "job_1", "status": "succeeded"}
    url = f"http://127.0.0.1:{server.server_port}/hook"
    assert deliver(url, job, b"secret", ("127.0.0.1",), delays=(0.01, 0.01, 0.01), sleep=lambda s: None)
    assert len(got) == 3
    headers, body = got[-1]
    assert json.loads(body) == job and headers["X-Boothline-Signature"] == signature(b"secret", body)


def test_a_host_not_allowed_is_never_contacted(receiver):
    server, got = receiver
    url = f"http://127.0.0.1:{server.server_port}/hook"
    assert not deliver(url, {"id": "job_2"}, b"secret", ("hooks.example.com",))
    assert got == []


def test_a_client_error_is_final(monkeypatch):
    import httpx

    class Answer:
        is_success, status_code = False, 400

    def no_retry(seconds):
        raise AssertionError("no retry after a 4xx")

    monkeypatch.setattr(httpx, "post", lambda *args, **kwargs: Answer())
    assert not deliver("http://127.0.0.1:9/hook", {"id": "job_3"}, b"s", ("127.0.0.1",), sleep=no_retry)

