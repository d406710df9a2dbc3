"""Every 4xx/5xx answer is Salesforce's "Error with Output": a list of
``{errorCode, message, output, enhancedErrorType}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.jsonio import ExactJSONResponse
from domain.errors import OrderManagementError

logger = logging.getLogger("om.api")


class ApiError(Exception):
    """An error the facade itself raises (authentication, permissions, routing)."""

    def __init__(self, status_code: int, error_code: str, message: str, output: dict[str, Any] | None = None):
        super().__init__(message)
        self.status_code, self.error_code, self.message, self.output = status_code, error_code, message, output


def error_with_output(status_code: int, error_code: str, message: str, output: dict[str, Any] | None = None) -> ExactJSONResponse:
    body = [{"errorCode": error_code, "message": message, "output": output, "enhancedErrorType": None}]
    headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
    return ExactJSONResponse(body, status_code=status_code, headers=headers)


def validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return error_with_output(exc.status_code, exc.error_code, exc.message, exc.output)

    @app.exception_handler(OrderManagementError)
    async def _domain_error(_request: Request, exc: OrderManagementError):
        return error_with_output(exc.http_status, exc.error_code, exc.message, getattr(exc, "output", None))

    @app.exception_handler(ValidationError)
    async def _pydantic_error(_request: Request, exc: ValidationError):
        return error_with_output(400, "INVALID_INPUT", validation_message(exc.errors()))

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, exc: RequestValidationError):
        return error_with_output(400, "INVALID_INPUT", validation_message(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "INVALID_SESSION_ID"}.get(exc.status_code, "ERROR")
        return error_with_output(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        logger.exception("unexpected error")
        return error_with_output(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred; nothing was started.")
