"""Synchronous actions: validate, run in one store transaction, answer; with Idempotency-Key.

A retried request under the same Idempotency-Key gets the first answer again and changes
nothing more; a different request under a used key gets 409. The answer is written in the
action's own transaction (``IdempotentRequest``), so the record of it commits exactly when
the action's effects do. Two racing requests with one key: the order summary's lock (or
SQLite's single writer) makes the second wait, and it then replays the first's answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Annotated, Any

import simplejson
from fastapi import Header, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.deps import Caller
from api.versions import check_version
from api.errors import ApiError, validation_message
from api.jsonio import dumps
from db.ids import is_valid_id, to_18
from db.models import IdempotentRequest
from domain.errors import InvalidInputError, OrderManagementError

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=255,
    description="Send the same key when retrying after a network error: the same request gets the same answer "
                "and changes nothing more; a different request under a used key gets 409.",
)]


_VERSION_PREFIX = re.compile(r"^/services/data/v\d+\.\d")


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path (whatever the API version) and body."""
    path = _VERSION_PREFIX.sub("", path)
    canonical = simplejson.dumps(body, use_decimal=True, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def replay_stored(session: Session, key: str, request_fingerprint: str) -> Response | None:
    """The stored answer to this key (409 if it was for another request), or None."""
    stored = session.get(IdempotentRequest, key)
    if stored is None:
        return None
    if stored.fingerprint != request_fingerprint:
        raise ApiError(409, "IDEMPOTENCY_KEY_REUSED",
                       "this Idempotency-Key was used for a different request; use a new key for a new request")
    return Response(stored.response_body, status_code=stored.status_code, media_type="application/json",
                    headers={"Idempotent-Replayed": "true"})


def run_sync_action(
    model: type[BaseModel],
    run: Callable[..., dict[str, Any]],
    *,
    record_id: tuple[str, str] | None,
    caller: Caller,
    session: Session,
    body: Any,
    path: str,
    idempotency_key: str | None,
    permission: str = "write",
    version: str | None = None,
) -> Response:
    """Run ``run(session=, request=)`` (with ``record_id``'s name and value as one more
    keyword, e.g. ``order_summary_id=``), which answers the response body, in one
    transaction: all of it commits, or nothing on error."""
    caller.require(permission)
    key = caller.scoped(idempotency_key) if idempotency_key else None
    request_fingerprint = fingerprint("POST", path, body)
    if key and (replayed := replay_stored(session, key, request_fingerprint)):
        session.rollback()
        return replayed
    target = {}
    try:
        if record_id is not None:
            name, value = record_id
            if not is_valid_id(value):
                raise InvalidInputError(f"{name} '{value}' is not a valid record Id")
            target = {_snake(name): to_18(value)}
        if version is not None:
            check_version(model, body, version)
        try:
            request = model.model_validate(body)
        except ValidationError as exc:
            raise InvalidInputError(validation_message(exc.errors())) from exc
        answer = run(session=session, request=request, **target)
        content = dumps(answer)
        if key:
            session.add(IdempotentRequest(key=key, fingerprint=request_fingerprint, status_code=201,
                                          response_body=content.decode()))
        session.commit()
    except (OrderManagementError, ApiError, IntegrityError):
        session.rollback()
        # A request racing ours under the same key committed first: answer what it answered.
        if key and (replayed := replay_stored(session, key, request_fingerprint)):
            session.rollback()
            return replayed
        raise
    except BaseException:
        session.rollback()
        raise
    return Response(content, status_code=201, media_type="application/json")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
