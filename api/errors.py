"""Every 4xx/5xx answer is Salesforce's "Error with Output": a list of
``{errorCode, message, output, enhancedErrorType}``."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prefect.exceptions import PrefectHTTPStatusError
from pydantic import ValidationError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.jsonio import ExactJSONResponse
from domain.errors import OrderManagementError

logger = logging.getLogger("om.api")


class ApiError(Exception):
    """An error the facade itself raises (authentication, permissions, routing)."""

    def __init__(self, status_code: int, error_code: str, message: str, output: dict[str, Any] | None = None):
        super().__init__(message)
        self.status_code, self.error_code, self.message, self.output = status_code, error_code, message, output


def _headers(status_code: int) -> dict[str, str] | None:
    if status_code == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status_code == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return None


def error_with_output(status_code: int, error_code: str, message: str, output: dict[str, Any] | None = None) -> ExactJSONResponse:
    body = [{"errorCode": error_code, "message": message, "output": output, "enhancedErrorType": None}]
    return ExactJSONResponse(body, status_code=status_code, headers=_headers(status_code))


RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = ("The engine cannot reach {part} right now; the request was most likely not accepted. Retry in"
                       " a few seconds with the same Idempotency-Key: a retry under it never starts a second operation.")


_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validation_message(errors: list[dict[str, Any]]) -> str:
    """Readable pydantic errors: field names and list indices only, no validator internals,
    and no "should be None" alternative for an optional field that has a real error."""
    located: dict[str, list[str]] = {}
    for error in errors:
        loc = [p for p in error.get("loc", ()) if isinstance(p, int) or (
            isinstance(p, str) and _FIELD.match(p) and p not in ("body", "none"))]
        where = ".".join(str(p) for p in loc)
        located.setdefault(where, [])
        if error.get("type") == "none_required":
            continue
        message = str(error.get("msg"))
        if message not in located[where]:
            located[where].append(message)
    parts = []
    for where, messages in located.items():
        for message in messages or ["Input should be None"]:
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


_SOBJECT_PATH = re.compile(r"^/services/data/v[^/]+/(sobjects(/(?P<object>[A-Za-z]+))?|query|queryAll)(/|$)")


def sobject_path(path: str) -> bool:
    """Whether ``path`` is a REST API sObject or query resource (their errors carry ``fields``)."""
    return _SOBJECT_PATH.match(path) is not None


def sobject_errors(status_code: int, errors: list[dict[str, Any]]) -> ExactJSONResponse:
    """The REST API's (sObject) error body: ``[{"message", "errorCode", "fields"}]``."""
    return ExactJSONResponse([{"message": e["message"], "errorCode": e["errorCode"], "fields": e.get("fields", [])}
                              for e in errors], status_code=status_code, headers=_headers(status_code))


def _sobject_validation_errors(object_name: str | None, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors on an sObject's fields as Salesforce names them: an unknown field is
    INVALID_FIELD, a missing one REQUIRED_FIELD_MISSING, a value not in a picklist
    INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, any other bad value FIELD_INTEGRITY_EXCEPTION."""
    rendered = []
    for error in errors:
        field = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",)) or None
        fields = [field] if field else []
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            rendered.append({"errorCode": "INVALID_FIELD", "fields": fields,
                             "message": f"No such column '{field}' on sobject of type {object_name}"})
        elif kind == "missing":
            rendered.append({"errorCode": "REQUIRED_FIELD_MISSING", "fields": fields,
                             "message": f"Required fields are missing: [{field}]"})
        elif kind in ("literal_error", "enum"):
            rendered.append({"errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": fields,
                             "message": f"{field}: bad value for restricted picklist field: {error.get('input')!r}"})
        else:
            rendered.append({"errorCode": "FIELD_INTEGRITY_EXCEPTION", "fields": fields,
                             "message": f"{field}: {error.get('msg')}" if field else str(error.get("msg"))})
    return rendered


def _render(request: Request, status_code: int, error_code: str, message: str,
            output: dict[str, Any] | None = None, fields: list[str] | None = None) -> ExactJSONResponse:
    """Salesforce answers its REST API (sObjects) and Connect resources in different shapes."""
    if _SOBJECT_PATH.match(request.url.path):
        if status_code == 404:  # a missing record, or an sObject type that is not served
            return sobject_errors(404, [{"errorCode": "NOT_FOUND",
                                         "message": f"The requested resource does not exist: {message}"}])
        return sobject_errors(status_code, [{"errorCode": error_code, "message": message, "fields": fields or []}])
    return error_with_output(status_code, error_code, message, output)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _render(request, exc.status_code, exc.error_code, exc.message, exc.output)

    @app.exception_handler(OrderManagementError)
    async def _domain_error(request: Request, exc: OrderManagementError):
        return _render(request, exc.http_status, exc.error_code, exc.message, getattr(exc, "output", None),
                       getattr(exc, "fields", None))

    @app.exception_handler(ValidationError)
    async def _pydantic_error(request: Request, exc: ValidationError):
        if matched := _SOBJECT_PATH.match(request.url.path):
            return sobject_errors(400, _sobject_validation_errors(matched.group("object"), list(exc.errors())))
        return error_with_output(400, "INVALID_INPUT", validation_message(exc.errors()))

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, exc: RequestValidationError):
        return error_with_output(400, "INVALID_INPUT", validation_message(list(exc.errors())))

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError):
        return error_with_output(400, "INVALID_INPUT", f"a value does not fit the store: {exc.orig}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "INVALID_SESSION_ID",
                413: "REQUEST_TOO_LARGE"}.get(exc.status_code, "ERROR")
        return _render(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(httpx.TransportError)
    async def _prefect_unreachable(_request: Request, exc: httpx.TransportError):
        logger.warning("Prefect server unreachable: %s", type(exc).__name__)
        return error_with_output(503, "SERVICE_UNAVAILABLE", UNAVAILABLE_MESSAGE.format(part="its Prefect server"))

    @app.exception_handler(PrefectHTTPStatusError)
    async def _prefect_error(_request: Request, exc: PrefectHTTPStatusError):
        if exc.response.status_code >= 500 or exc.response.status_code == 429:
            logger.warning("Prefect server answered %s", exc.response.status_code)
            return error_with_output(503, "SERVICE_UNAVAILABLE", UNAVAILABLE_MESSAGE.format(part="its Prefect server"))
        logger.exception("Prefect refused a request of the facade")
        return error_with_output(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred; nothing was started.")

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _store_unreachable(_request: Request, exc: Exception):
        logger.warning("store unreachable: %s", type(exc).__name__)
        return error_with_output(503, "SERVICE_UNAVAILABLE", UNAVAILABLE_MESSAGE.format(part="its store"))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        logger.exception("unexpected error")
        return error_with_output(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred; nothing was started.")
