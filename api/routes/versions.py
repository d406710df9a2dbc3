"""``GET /services/data`` (the versions served) and ``GET /services/data/vNN.N`` (the
resources of one version), as Salesforce's REST API answers them, so a client that
discovers the newest version first finds it."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter

from api.deps import NEWEST_VERSION, OLDEST_VERSION, ApiVersion, CurrentCaller
from api.jsonio import ExactJSONResponse

router = APIRouter(prefix="/services/data", tags=["Versions"])


def served_versions() -> list[str]:
    return [f"{Decimal(major)}.0" for major in range(int(OLDEST_VERSION), int(NEWEST_VERSION) + 1)]


@router.get("", summary="The API versions served")
@router.get("/", include_in_schema=False)
def versions():
    """Answers ``[{"label", "url", "version"}]``, oldest first (no token needed, as in Salesforce)."""
    return ExactJSONResponse([{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in served_versions()])


@router.get("/v{version}", summary="The resources of one API version")
@router.get("/v{version}/", include_in_schema=False)
def resources(_version: ApiVersion, _caller: CurrentCaller):
    base = f"/services/data/v{_version}"
    return ExactJSONResponse({"sobjects": f"{base}/sobjects", "query": f"{base}/query", "queryAll": f"{base}/queryAll",
                              "actions": f"{base}/actions", "commerce": f"{base}/commerce"})


@router.get("/v{version}/actions", summary="The kinds of action")
@router.get("/v{version}/actions/", include_in_schema=False)
def action_kinds(_version: ApiVersion, _caller: CurrentCaller):
    base = f"/services/data/v{_version}/actions"
    return ExactJSONResponse({"standard": f"{base}/standard", "custom": f"{base}/custom"})
