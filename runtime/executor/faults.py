"""Which exceptions are infrastructure faults (resume the run later) and which are the
operation's own outcome (let the run fail now).

A run that failed because the Prefect server, the store's database or the network between
them did not answer has not been refused: its input was valid and its steps are keyed by
the operation id, so running it again later finishes what it started. A business refusal
(our :class:`domain.errors.OrderManagementError`) or a bug is not helped by running again
and fails at once, as before.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy import exc as sqlalchemy_exc

from domain.errors import OrderManagementError

# Database errors that say the connection or the server went away, or the transaction lost
# a race it may win next time (serialization failure, deadlock, a locked SQLite file).
_DATABASE_FAULTS = (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError, sqlalchemy_exc.TimeoutError)

RESUME_DELAYS = (1, 2, 4, 8, 15, 30, 60)  # seconds before each next attempt, the last repeated
MAX_FAULT_ATTEMPTS = 40  # about half an hour of outage; then the run fails with what happened


def is_infrastructure_fault(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is an outage of a part we run on rather than a
    refusal or a bug. A business error raised, or explicitly raised from, wins: it is the
    answer. One that was only being handled when the outage struck does not (running
    again reaches it again, and then fails with it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    explicit = True  # on the chain of raise ... from ...
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if explicit and isinstance(current, OrderManagementError):
            return False
        if _is_fault(current):
            return True
        explicit = explicit and current.__cause__ is not None
        current = current.__cause__ or current.__context__
    return False


def _is_fault(exc: BaseException) -> bool:
    if isinstance(exc, (httpx.TransportError, ConnectionError, *_DATABASE_FAULTS)):
        return True
    if isinstance(exc, sqlalchemy_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return False


def resume_delay(attempt: int) -> timedelta:
    """How long to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    return timedelta(seconds=RESUME_DELAYS[min(max(attempt, 1), len(RESUME_DELAYS)) - 1])


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
