"""``POST /services/data/vNN.N/actions/custom/flow/{name}``: start a composed flow.

Salesforce invokes autolaunched flows at this path with ``{"inputs": [{...}]}``; here each
input starts one run of the flow's deployment and answers its id as the
``backgroundOperationId`` output. All inputs are checked first by doing each one's first
step, together, in one transaction that is rolled back, so an invalid request starts
nothing. Should starting a run fail midway, the answer says per input which runs started
(``isSuccess``), so a retry under the same Idempotency-Key starts only the missing ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session

from actions.change_orders import SubmitCancelInput, submit_cancel_items
from actions.fields import ActionModel, RecordId
from actions.fulfillment import FulfillItemsInput, fulfill_and_invoice
from actions.returns import ReturnItemsInput, process_return_items
from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.errors import ApiError, validation_message
from api.jsonio import ExactJSONResponse, exact_json_body
from api.operations import existing_operation, start_operation
from domain.errors import InvalidInputError

router = APIRouter(prefix="/services/data/v{version}/actions/custom/flow", tags=["Composed flows"])

ExactBody = Annotated[Any, Depends(exact_json_body)]


class CancelToRefundInputs(ActionModel):
    order_summary_id: RecordId
    submit_cancel_input: SubmitCancelInput


class ReturnToRefundInputs(ActionModel):
    return_order_id: RecordId
    return_items_input: ReturnItemsInput


class InvoiceToFundsInputs(ActionModel):
    order_summary_id: RecordId
    fulfill_items_input: FulfillItemsInput


@dataclass(frozen=True)
class ComposedFlow:
    deployment: str
    inputs: type[ActionModel]
    first_step: Callable[[Session, Any], object]  # done, then rolled back, as the check
    permissions: tuple[str, ...]


FLOWS: dict[str, ComposedFlow] = {
    "cancel_to_refund": ComposedFlow(
        "cancel-to-refund/cancel-to-refund", CancelToRefundInputs,
        lambda s, i: submit_cancel_items(session=s, order_summary_id=i.order_summary_id, request=i.submit_cancel_input),
        ("write", "refund")),
    "return_to_refund": ComposedFlow(
        "return-to-refund/return-to-refund", ReturnToRefundInputs,
        lambda s, i: process_return_items(session=s, return_order_id=i.return_order_id, request=i.return_items_input),
        ("write", "refund")),
    "invoice_to_funds": ComposedFlow(
        "invoice-to-funds/invoice-to-funds", InvoiceToFundsInputs,
        lambda s, i: fulfill_and_invoice(session=s, order_summary_id=i.order_summary_id, request=i.fulfill_items_input),
        ("write", "capture")),
}


class FlowRequest(BaseModel):
    inputs: list[dict[str, Any]] = Field(min_length=1, max_length=200)


def _parameters(inputs: ActionModel) -> dict[str, Any]:
    # the flow's Python parameter names, each nested input in its camelCase wire form
    return {name: value.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(value, BaseModel) else value
            for name, value in inputs}


@router.post("/{flow_name}", summary="Start a composed flow (one run per input)")
def start_flow(
    flow_name: Annotated[str, Path(description=f"One of: {', '.join(FLOWS)}")],
    _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
):
    """Answers ``[{actionName, isSuccess, errors, outputValues: {backgroundOperationId}}]``, one per input."""
    flow = FLOWS.get(flow_name)
    if flow is None:
        raise ApiError(404, "NOT_FOUND", f"flow '{flow_name}' is not one of {', '.join(FLOWS)}")
    for permission in flow.permissions:
        caller.require(permission)
    try:
        requests = [flow.inputs.model_validate(raw) for raw in FlowRequest.model_validate(body).inputs]
    except ValidationError as exc:
        raise InvalidInputError(validation_message(exc.errors())) from exc
    keys = [caller.scoped(f"{idempotency_key}#{n}") if idempotency_key else None for n in range(len(requests))]
    parameters = [_parameters(request) for request in requests]
    replayed = [key and existing_operation(flow.deployment, key, params) for key, params in zip(keys, parameters, strict=True)]
    try:  # every new input's first step, in one transaction: inputs that together ask too much are refused
        for request, done in zip(requests, replayed, strict=True):
            if not done:
                flow.first_step(session, request)
    finally:
        session.rollback()  # only a check
    results = []
    for key, params, done in zip(keys, parameters, replayed, strict=True):
        try:
            operation_id = done or start_operation(flow.deployment, params, idempotency_key=key)
        except ApiError as exc:  # the runs already started stand: say which ones did not
            results.append({"actionName": flow_name, "isSuccess": False, "outputValues": {"backgroundOperationId": None},
                            "errors": [{"statusCode": exc.error_code, "message": exc.message, "fields": []}]})
            continue
        results.append({"actionName": flow_name, "isSuccess": True, "errors": None,
                        "outputValues": {"backgroundOperationId": str(operation_id)}})
    return ExactJSONResponse(results)
