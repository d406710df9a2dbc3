"""``/services/data/vNN.N/sobjects``: create and read the money objects, read operations."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.errors import ApiError
from api.jsonio import ExactJSONResponse, exact_json_body
from api.operations import read_operation
from db.ids import is_valid_id, to_18
from db.models import OperationStep
from db.sobjects import create_sobject, describe_global, describe_sobject, read_sobject, update_sobject
from domain.errors import InvalidInputError

router = APIRouter(prefix="/services/data/v{version}/sobjects", tags=["sObjects"])

ExactBody = Annotated[Any, Depends(exact_json_body)]


@router.get("/BackgroundOperation/{operation_id}", summary="Read a background operation (a flow run)")
def get_background_operation(operation_id: str, _version: ApiVersion, _caller: CurrentCaller, session: SessionDep):
    """A composition step's operation id (on the records the step made) reads as the
    composition run that carries it."""
    step = session.get(OperationStep, operation_id)
    operation = read_operation(step.operation_id if step else operation_id)
    operation["attributes"]["url"] = f"{_base(_version)}/BackgroundOperation/{operation_id}"
    return ExactJSONResponse(operation)


@router.post(
    "/{object_name}", status_code=201, summary="Create a record",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}},
)
@router.post("/{object_name}/", status_code=201, include_in_schema=False)
def create_record(object_name: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody):
    """Create an sObject from Salesforce field names; answers ``{id, success, errors}``."""
    caller.require("write")
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object of field names and values")
    record = create_sobject(session=session, object_name=object_name, fields=body)
    session.commit()
    return ExactJSONResponse({"id": record.id, "success": True, "errors": []}, status_code=201)


def _stored(record_id: str) -> str:
    """The Id a record is kept under: a 15-character Id is read as its 18-character form."""
    return to_18(record_id) if is_valid_id(record_id) else record_id


def _base(version: str) -> str:
    return f"/services/data/v{version}/sobjects"


@router.get("/{object_name}/describe", summary="Describe an object: its fields (DescribeSObjectResult)")
@router.get("/{object_name}/describe/", include_in_schema=False)
def describe(object_name: str, _version: ApiVersion, _caller: CurrentCaller):
    return ExactJSONResponse(describe_sobject(object_name, _base(_version)))


@router.get("/{object_name}/{record_id}", summary="Read a record")
def get_record(object_name: str, record_id: str, _version: ApiVersion, _caller: CurrentCaller, session: SessionDep):
    record = read_sobject(session=session, object_name=object_name, record_id=_stored(record_id))
    return ExactJSONResponse({"attributes": {"type": object_name, "url": f"{_base(_version)}/{object_name}/{record_id}"},
                              **record})


@router.patch("/{object_name}/{record_id}", status_code=204, summary="Update a record (ProcessException: Status, Description)",
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}})
def update_record(object_name: str, record_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep,
                  body: ExactBody):
    """Salesforce's sObject update: 204 No Content; only the fields a person may change."""
    caller.require("write")
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object of field names and values")
    update_sobject(session=session, object_name=object_name, record_id=_stored(record_id), fields=body)
    session.commit()
    return Response(status_code=204)


@router.delete("/{object_name}/{record_id}", status_code=204,
               summary="Delete a record: refused (DELETE_FAILED); the ledger keeps every record")
def delete_record(object_name: str, record_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep):
    """Salesforce lets some of these objects be deleted; here every record is part of the
    money's history, so a delete is refused in Salesforce's shape (a missing record is
    NOT_FOUND), and a ProcessException is closed instead with Status Voided or Ignored."""
    caller.require("write")
    read_sobject(session=session, object_name=object_name, record_id=_stored(record_id))  # NOT_FOUND when missing
    hint = (" Set its Status to Voided or Ignored instead (PATCH)." if object_name == "ProcessException" else "")
    raise ApiError(400, "DELETE_FAILED", f"{object_name} {record_id} cannot be deleted: the engine keeps every record "
                                         f"of the money's history.{hint}")


@router.get("/{object_name}", summary="An object's basic information")
@router.get("/{object_name}/", include_in_schema=False)
def basic_information(object_name: str, _version: ApiVersion, _caller: CurrentCaller):
    described = describe_sobject(object_name, _base(_version))
    described.pop("fields")
    return ExactJSONResponse({"objectDescribe": described, "recentItems": []})


@router.get("", summary="List the supported objects (describeGlobal)")
def list_objects(_version: ApiVersion, _caller: CurrentCaller):
    return ExactJSONResponse(describe_global(_base(_version)))
