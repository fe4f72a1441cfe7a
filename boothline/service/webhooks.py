"""Telling a client a job is done: the job object POSTed to its `webhook` URL, signed, retried with backoff.

The body is the job object as JSON; `X-Boothline-Signature: sha256=<hex>` is the HMAC-SHA256 of the body
with the service's signing secret, and `X-Boothline-Job` names the job. A failure (no connection, a 5xx or
429) is retried after 1, 4 and 16 s; a 4xx other than 429 is final. Only hosts in `service.webhook_allow`
are ever contacted: the check at submission is made again before sending.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("boothline.service")
DELAYS = (1, 4, 16)


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def deliver(url: str, job: dict, secret: bytes, allow: tuple[str, ...], delays=DELAYS, sleep=time.sleep) -> bool:
    """POST `job` to `url`; True once a 2xx answered. Never raises."""
    if urlsplit(url).hostname not in allow:
        log.warning("webhook for %s not sent: host not in service.webhook_allow", job["id"])
        return False
    body = json.dumps(job).encode()
    headers = {"Content-Type": "application/json", "X-Boothline-Job": job["id"],
               "X-Boothline-Signature": signature(secret, body)}
    for attempt, delay in enumerate((0, *delays)):
        if delay:
            sleep(delay)
        try:
            answer = httpx.post(url, content=body, headers=headers, timeout=10, follow_redirects=False)
        except httpx.HTTPError as err:
            log.warning("webhook for %s, attempt %d: %s", job["id"], attempt + 1, err)
            continue
        if answer.is_success:
            return True
        if answer.status_code < 500 and answer.status_code != 429:
            log.warning("webhook for %s refused with %d; not retried", job["id"], answer.status_code)
            return False
        log.warning("webhook for %s, attempt %d: %d", job["id"], attempt + 1, answer.status_code)
    return False


def deliver_later(url: str, job: dict, secret: bytes, allow: tuple[str, ...], done=None) -> threading.Thread:
    def run():
        ok = deliver(url, job, secret, allow)
        if done:
            done(ok)

    thread = threading.Thread(target=run, name=f"webhook-{job['id']}", daemon=True)
    thread.start()
    return thread
