"""``POST /services/data/vNN.N/actions/custom/flow/{name}``: start a composition (issue 13).

Salesforce invokes autolaunched flows at this path with ``{"inputs": [{...}]}``; here
``name`` is a composition's (an om-composition block; ``_`` and ``-`` alike, so
``return_to_refund`` is the shipped ``return-to-refund``) and each input starts one run of
the run-composition deployment, whose id is answered as the ``backgroundOperationId``
output. Before any run starts, the composition is checked against the actions, every
input against the composition's inputs, and each input's first step is done, all inputs
together, in one transaction that is rolled back, so an invalid request starts nothing.
Should starting a run fail midway, the answer says per input which runs started
(``isSuccess``), so a retry under the same Idempotency-Key starts only the missing ones.

``POST /services/data/vNN.N/actions/custom/flow/check`` (our extension) checks a
composition an admin is about to save, and changes nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session

from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.errors import ApiError, validation_message
from api.flow_parameters import as_parameter
from api.jsonio import ExactJSONResponse, exact_json_body
from api.operations import existing_operation, read_composition_data, start_operation
from compositions.actions import ACTIONS
from compositions.check import check
from compositions.inputs import read_inputs
from compositions.model import Composition, Reference
from compositions.records import invalid_composition
from compositions.run import Scope, plain
from domain.errors import InvalidInputError

router = APIRouter(prefix="/services/data/v{version}/actions/custom/flow", tags=["Compositions"])

ExactBody = Annotated[Any, Depends(exact_json_body)]
DEPLOYMENT = "run-composition/run-composition"
PERMISSIONS = {"ensure-refunds-async": "refund", "ensure-funds-async": "capture"}
"""Beside ``write``, what a caller needs to start a composition with such a step."""


class FlowRequest(BaseModel):
    inputs: list[dict[str, Any]] = Field(min_length=1, max_length=200)


BLOCK_NAME = re.compile(r"^[a-z0-9-]{1,255}$")
"""What Prefect allows as a block document's name; no other name can be a composition."""


def load(name: str) -> Composition:
    composition_name = name.replace("_", "-")
    data = read_composition_data(composition_name) if BLOCK_NAME.match(composition_name) else None
    if data is None:
        raise ApiError(404, "NOT_FOUND", f"there is no composition named '{name}' (an om-composition block)")
    try:
        return Composition.model_validate({"name": composition_name, **data})
    except ValidationError as exc:
        raise InvalidInputError(f"composition {composition_name}: {validation_message(exc.errors())}") from exc


def dry_run_first_step(session: Session, composition: Composition, inputs: dict[str, Any]) -> None:
    """Do the first step's store work (the caller rolls it back), when it runs for sure and
    takes only the composition's inputs and literals."""
    first = composition.steps[0]
    spec = ACTIONS[first.action]
    if first.when or first.for_each or spec.dry_run is None or _refers_to_steps(first.inputs):
        return
    values = Scope(inputs={name: plain(value) for name, value in inputs.items()}).resolve(first.inputs)
    try:
        record_id, request = spec.split(values)
    except (ValidationError, KeyError) as exc:
        message = validation_message(exc.errors()) if isinstance(exc, ValidationError) else f"{exc} is missing"
        raise InvalidInputError(f"step {first.id} ({first.action}): {message}") from exc
    spec.dry_run(session, record_id, request)


def _refers_to_steps(value: Any) -> bool:
    if isinstance(value, Reference):
        return not value.ref.startswith("inputs.")
    if isinstance(value, dict):
        return any(_refers_to_steps(v) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to_steps(v) for v in value)
    return False


@router.post("/check", summary="Check a composition before saving it (changes nothing)")
def check_composition(_version: ApiVersion, caller: CurrentCaller, body: ExactBody):
    """Answers ``{"isValid": bool, "problems": [{"step", "field", "message"}]}``: every problem at once."""
    caller.require("read")
    try:
        composition = Composition.model_validate(body)
    except ValidationError as exc:
        problems = [{"step": "composition", "field": ".".join(str(p) for p in error["loc"]), "message": error["msg"]}
                    for error in exc.errors()]
        return ExactJSONResponse({"isValid": False, "problems": problems})
    problems = [{"step": p.step, "field": p.field, "message": p.message} for p in check(composition)]
    return ExactJSONResponse({"isValid": not problems, "problems": problems})


@router.post("/{flow_name}", summary="Start a composition (one run per input)")
def start_flow(
    flow_name: Annotated[str, Path(description="A composition's name, e.g. return_to_refund or return-to-refund.")],
    _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
):
    """Answers ``[{actionName, isSuccess, errors, outputValues: {backgroundOperationId}}]``, one per input."""
    composition = load(flow_name)
    caller.require("write")
    for permission in sorted({PERMISSIONS[s.action] for s in composition.steps if s.action in PERMISSIONS}):
        caller.require(permission)
    problems = check(composition)
    if problems:
        raise invalid_composition(composition.name, problems)
    try:
        raw_inputs = FlowRequest.model_validate(body).inputs
    except ValidationError as exc:
        raise InvalidInputError(validation_message(exc.errors())) from exc
    inputs = [read_inputs(composition, raw) for raw in raw_inputs]
    keys = [caller.scoped(f"{idempotency_key}#{n}") if idempotency_key else None for n in range(len(inputs))]
    parameters = [{"composition": composition.name, "inputs": as_parameter(values)} for values in inputs]
    replayed = [key and existing_operation(DEPLOYMENT, key, params) for key, params in zip(keys, parameters, strict=True)]
    try:  # every new input's first step, in one transaction: inputs that together ask too much are refused
        for values, done in zip(inputs, replayed, strict=True):
            if not done:
                dry_run_first_step(session, composition, values)
    finally:
        session.rollback()  # only a check
    results = []
    for key, params, done in zip(keys, parameters, replayed, strict=True):
        try:
            operation_id = done or start_operation(DEPLOYMENT, params, idempotency_key=key)
        except ApiError as exc:  # the runs already started stand: say which ones did not
            results.append({"actionName": flow_name, "isSuccess": False, "outputValues": {"backgroundOperationId": None},
                            "errors": [{"statusCode": exc.error_code, "message": exc.message, "fields": []}]})
            continue
        results.append({"actionName": flow_name, "isSuccess": True, "errors": None,
                        "outputValues": {"backgroundOperationId": str(operation_id)}})
    return ExactJSONResponse(results)
