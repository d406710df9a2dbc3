"""Which exceptions resume a run (an outage of a part we run on) and which fail it (the
operation's own answer, or a bug)."""

from __future__ import annotations

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy.exc import IntegrityError, OperationalError

from domain.errors import InsufficientAvailableToRefundError
from runtime.executor.faults import describe, is_infrastructure_fault, resume_delay


def _status_error(code: int) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:4200/api/flow_runs/")
    return PrefectHTTPStatusError.from_httpx_error(
        httpx.HTTPStatusError("boom", request=request, response=httpx.Response(code, request=request)))


def _raised(make) -> BaseException:
    try:
        make()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("nothing raised")


def _database_down() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


@pytest.mark.parametrize("exc", [
    _database_down(), httpx.ConnectError("All connection attempts failed"), ConnectionResetError(),
    _status_error(503), _status_error(500), _status_error(429),
])
def test_outages_resume(exc):
    assert is_infrastructure_fault(exc)


@pytest.mark.parametrize("exc", [
    InsufficientAvailableToRefundError("not enough"), ValueError("a bug"), _status_error(404), _status_error(409),
    IntegrityError("INSERT", {}, Exception("duplicate key")),
])
def test_refusals_and_bugs_fail(exc):
    assert not is_infrastructure_fault(exc)


def test_a_business_error_raised_from_an_outage_is_the_answer():
    def make():
        try:
            raise _database_down()
        except OperationalError as exc:
            raise InsufficientAvailableToRefundError("not enough") from exc

    assert not is_infrastructure_fault(_raised(make))


def test_an_outage_while_handling_a_business_error_resumes():
    """Running again reaches the business error again, and then fails with it."""
    def make():
        try:
            raise InsufficientAvailableToRefundError("not enough")
        except InsufficientAvailableToRefundError:
            raise _database_down()  # noqa: B904 - the store went away while recording the refusal

    assert is_infrastructure_fault(_raised(make))


def test_a_wrapped_outage_resumes():
    def make():
        try:
            raise httpx.ReadTimeout("no answer")
        except httpx.ReadTimeout as exc:
            raise RuntimeError("the engine could not record the state") from exc

    assert is_infrastructure_fault(_raised(make))


def test_the_delay_grows_then_stays_at_a_minute():
    assert [resume_delay(n).total_seconds() for n in (1, 2, 3, 7, 8, 40)] == [1, 2, 4, 60, 60, 60]
    assert describe(httpx.ConnectError("All connection attempts failed")) == "ConnectError: All connection attempts failed"
