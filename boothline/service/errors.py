"""Every refusal the API gives: a status, a JSON body `{error, detail, field}` and optional headers.
Handlers turn these, bad request bodies and unexpected exceptions into JSON; no traceback reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("boothline.service")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra):
        self.status, self.error, self.detail, self.field = status, error, detail, field
        self.headers, self.extra = headers or {}, extra
        super().__init__(f"{status} {error}: {detail}")

    def body(self) -> dict:
        return {"error": self.error, "detail": self.detail, **({"field": self.field} if self.field else {}),
                **self.extra}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {ident!r}")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        if err.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, err)
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"error": "invalid_request", "detail": first.get("msg", "invalid request"),
                             "field": field or None}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        names = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse({"error": names.get(err.status_code, "http_error"), "detail": str(err.detail)},
                            status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        log.exception("%s %s failed (user %s)", request.method, request.url.path,
                      getattr(request.state, "user", None))
        return JSONResponse({"error": "internal", "detail": "the server failed on this request; it is logged"},
                            status_code=500)
