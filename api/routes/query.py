"""``GET /services/data/vNN.N/query?q=SOQL`` (and ``queryAll``, and ``query/{locator}`` for
the next batch): read-only SOQL (:mod:`db.soql`) answered in Salesforce's query result
shape, ``{"totalSize", "done", "nextRecordsUrl"?, "records": [{"attributes": {...}, ...}]}``,
2,000 records a batch. The locator carries the query and where the next batch starts; it
is read back through the same parser, so it can ask nothing a query could not."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query as QueryParam

from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.jsonio import ExactJSONResponse
from db.soql import MalformedQueryError, parse, run

router = APIRouter(prefix="/services/data/v{version}", tags=["Query"])

BATCH = 2_000


def _locator(text: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"q": text, "o": offset}).encode()).decode().rstrip("=")


def _from_locator(locator: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4)))
        return str(data["q"]), int(data["o"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise MalformedQueryError(f"invalid query locator '{locator[:40]}'") from None


def answer(session, version: str, text: str, offset: int) -> ExactJSONResponse:
    query = parse(text)
    total, records = run(session, query, offset=offset, batch=BATCH)
    base = f"/services/data/v{version}/sobjects/{query.object_name}"
    body: dict[str, Any] = {"totalSize": total, "done": offset + len(records) >= total,
                            "records": [{"attributes": {"type": query.object_name, "url": f"{base}/{r.get('Id', '')}"}, **r}
                                        for r in records]}
    if not body["done"]:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{_locator(text, offset + len(records))}"
    session.rollback()  # only read
    return ExactJSONResponse(body)


SOQL = Annotated[str, QueryParam(alias="q", min_length=1, max_length=20_000, description="The SOQL query.")]


@router.get("/query", summary="Run a read-only SOQL query")
@router.get("/query/", include_in_schema=False)
@router.get("/queryAll", summary="Run a read-only SOQL query (nothing is deleted here: the same as query)")
@router.get("/queryAll/", include_in_schema=False)
def query(q: SOQL, _version: ApiVersion, caller: CurrentCaller, session: SessionDep):
    caller.require("read")
    return answer(session, _version, q, 0)


@router.get("/query/{locator}", summary="The next batch of a query's records (nextRecordsUrl)")
@router.get("/queryAll/{locator}", include_in_schema=False)
def query_more(locator: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep):
    caller.require("read")
    text, offset = _from_locator(locator)
    return answer(session, _version, text, offset)
