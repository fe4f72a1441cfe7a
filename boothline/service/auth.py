"""Who is asking: a bearer API key, or (for URLs a browser fetches itself) a signature the API handed out.
Each key is rate-limited; refusals are 401 and 429 with `Retry-After`."""

from __future__ import annotations

from fastapi import Request

from boothline.service.accounts import Account, authenticate
from boothline.service.errors import ApiError
from boothline.service.limits import retry_after


async def account_of(request: Request) -> Account:
    """FastAPI dependency: the authenticated account (bearer key, or a valid signed URL).

    It runs on the event loop, as do the read-only GET routes that clients poll (status, lists, history,
    `/v1/me`): their work is short reads (a WAL reader never waits for a lock), and run in worker threads
    instead, 50 concurrent requests spend their time handing the GIL round (benchmarks/service_load.py:
    `/v1/me` went from 142 to 334 requests/s). Routes that write, and may wait for the write lock, stay in
    threads."""
    state = request.app.state.service
    header = request.headers.get("authorization", "")
    account = None
    if header.lower().startswith("bearer "):
        account = authenticate(state.store, header[7:].strip())
        if account is None:
            raise ApiError(401, "unauthorized", "the API key is unknown or revoked",
                           headers={"WWW-Authenticate": "Bearer"})
    else:
        q = request.query_params
        user_id = state.signer.verify(request.url.path, q.get("u"), q.get("exp"), q.get("sig"))
        if user_id is not None:
            account = state.account_by_id(user_id)
    if account is None:
        raise ApiError(401, "unauthorized", "send `Authorization: Bearer <key>` (keys: `boothline keys create`)",
                       headers={"WWW-Authenticate": "Bearer"})
    wait = state.limiter.take(account.key_id or f"signed-{account.user_id}")
    if wait:
        raise ApiError(429, "rate_limited", f"too many requests; retry in {retry_after(wait)} s",
                       headers={"Retry-After": retry_after(wait)})
    request.state.user = account.name
    return account
