"""``GET /services/data/vNN.N/actions/standard[/{action}]``: the Order Management actions
this engine serves, described as Salesforce's invocable-action describe does (REST API
"Invocable Actions"), generated from the same typed models the Prefect tasks use
(:data:`compositions.actions.ACTIONS`): one source of truth for the form, the check and
the describe.

Salesforce invokes Order Management actions through their Connect resources, not through
``POST /actions/standard/...``; so does this engine (the describe is for reading)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic.alias_generators import to_camel

from actions.fields import MAX_ITEMS
from api.deps import ApiVersion, CurrentCaller
from api.errors import ApiError
from api.jsonio import ExactJSONResponse
from compositions.actions import ACTIONS, ActionSpec
from compositions.check import kind_of, resolve_node

router = APIRouter(prefix="/services/data/v{version}/actions/standard", tags=["Actions"])

ASYNC = {"ensure-refunds-async", "ensure-funds-async"}
"""Actions whose output is a background operation id (their typed output is the run's result)."""
ENGINE_ONLY = {"fulfil-items", "flag-open-balance"}
LABELS = {"fulfil-items": "Fulfill Items", "flag-open-balance": "Flag Open Balance",
          "create-invoice-from-change-orders": "Create Invoice from Change Orders"}


def sf_name(action: str) -> str:
    return to_camel(action.replace("-", "_"))


BY_SF_NAME: dict[str, ActionSpec] = {sf_name(name): spec for name, spec in ACTIONS.items()}

_TYPES = {"id": "ID", "amount": "DOUBLE", "quantity": "DOUBLE", "text": "STRING", "boolean": "BOOLEAN",
          "object": "APEX", "number": "DOUBLE"}


def _label(name: str, title: str | None) -> str:
    """A field's title when it was written for people, else its name in words (orderSummaryId: Order Summary Id)."""
    if title and " " in title:
        return title
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).title()


def _parameter(schema: dict, name: str, node: dict, *, required: bool | None) -> dict[str, Any]:
    kind = kind_of(schema, node, name)
    many = kind[0] == "list"
    inner = kind[1] if many else kind
    resolved = resolve_node(schema, node)
    items = resolve_node(schema, resolved.get("items", {})) if many else resolved
    described = {
        "name": name, "label": _label(name, resolved.get("title")),
        "description": resolved.get("description") or (items.get("description") if many else None),
        "type": _TYPES.get(inner[0], "APEX"), "maxOccurs": resolved.get("maxItems", MAX_ITEMS) if many else 1,
        "picklistValues": [{"label": v, "value": v} for v in items.get("enum", [])] or None,
        "sobjectType": None,
    }
    if inner[0] == "object":
        described["apexClass"] = inner[2].get("title")
    if required is not None:
        described |= {"required": required, "byteLength": 0}
    return described


def describe(name: str, spec: ActionSpec) -> dict[str, Any]:
    inputs_schema = spec.input_schema()
    required = set(inputs_schema.get("required", []))
    inputs = [_parameter(inputs_schema, field, node, required=field in required)
              for field, node in inputs_schema.get("properties", {}).items()]
    if name in ASYNC:
        outputs = [{"name": "backgroundOperationId", "label": "Background Operation Id", "type": "STRING", "maxOccurs": 1,
                    "description": "The flow run that carries the operation out.", "picklistValues": None,
                    "sobjectType": None}]
    else:
        outputs_schema = spec.output_schema()
        outputs = [_parameter(outputs_schema, field, node, required=None)
                   for field, node in outputs_schema.get("properties", {}).items()]
    return {"name": sf_name(name), "label": LABELS.get(name, name.replace("-", " ").title()),
            "type": "ORDER_MANAGEMENT" if name not in ENGINE_ONLY else "ORDER_MANAGEMENT_ENGINE",
            "description": (spec.request.__doc__ or "").strip().split("\n")[0], "standard": True,
            "category": "Order Management", "targetEntityName": None, "inputs": inputs, "outputs": outputs}


@router.get("", summary="List the standard Order Management actions served")
def list_standard_actions(_version: ApiVersion, caller: CurrentCaller):
    """Answers ``{"actions": [{"name", "label", "type"}]}``."""
    caller.require("read")
    described = [describe(name, spec) for name, spec in ACTIONS.items()]
    return ExactJSONResponse({"actions": [{key: d[key] for key in ("name", "label", "type")} for d in described]})


@router.get("/{action}", summary="Describe one standard action: its inputs and outputs")
def describe_standard_action(action: str, _version: ApiVersion, caller: CurrentCaller):
    caller.require("read")
    spec = BY_SF_NAME.get(action)
    if spec is None:
        raise ApiError(404, "NOT_FOUND", f"there is no standard action '{action}' (actions: {', '.join(BY_SF_NAME)})")
    return ExactJSONResponse(describe(spec.name, spec))
