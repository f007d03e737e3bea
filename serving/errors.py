"""API errors: one JSON shape, `{"error": "<one line>", "code": "<slug>"}`, with the HTTP status
that says whose fault it is. Every refusal in the API raises `ApiError`; nothing else reaches
the client as a traceback."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fmnist.errors import reason


class ApiError(Exception):
    """A request the server refuses: status, a stable code for scripts, a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict[str, str]:
    return {"error": message, "code": code}


def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "upload_too_large", 400: "bad_request"}


def install_handlers(app: FastAPI) -> None:
    """Route every error, ours, FastAPI's and Starlette's, into the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return _json(422, "invalid_parameter", f"{where}: {first.get('msg', 'invalid value')}".lstrip(": "))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return _json(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:  # a bug: say so, stay up
        return _json(500, "internal", f"internal error: {type(exc).__name__}: {reason(exc)}")
