"""Dependencies: the caller (bearer token), the store session, the API version."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session

from api.errors import ApiError
from api.settings import get_api_settings
from db.engine import get_engine


@dataclass(frozen=True)
class Caller:
    permissions: frozenset[str]
    token_digest: str = ""

    def scoped(self, key: str) -> str:
        """An idempotency key in this caller's own namespace (callers never collide)."""
        return f"{self.token_digest}:{key}"

    def require(self, permission: str) -> None:
        if "*" not in self.permissions and permission not in self.permissions:
            raise ApiError(403, "INSUFFICIENT_ACCESS", f"this operation needs the '{permission}' permission")


def current_caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid: send Authorization: Bearer <token>")
    permissions = get_api_settings().permissions_for(token.strip())
    if permissions is None:
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return Caller(frozenset(permissions), hashlib.sha256(token.strip().encode()).hexdigest()[:16])


def store_session() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


OLDEST_VERSION, NEWEST_VERSION = Decimal("48.0"), Decimal("67.0")
"""The API versions served: Order Management's Connect resources start at 48.0; 67.0 is
Summer '26, the newest release whose reference this engine was checked against."""


def api_version(version: Annotated[str, Path(pattern=r"^\d{2,3}\.\d$", description="API version, 48.0 to 67.0")]) -> str:
    if not OLDEST_VERSION <= Decimal(version) <= NEWEST_VERSION:  # Salesforce: no such resource
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: API version {version} is not "
                                         f"served ({OLDEST_VERSION} to {NEWEST_VERSION})")
    return version


CurrentCaller = Annotated[Caller, Depends(current_caller)]
SessionDep = Annotated[Session, Depends(store_session)]
ApiVersion = Annotated[str, Depends(api_version)]
