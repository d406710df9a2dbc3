"""The facade's OpenAPI document is valid OpenAPI 3.1 and every reference in it resolves
(issue 14): generated clients and fuzzers can build every request body."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from api.main import create_app


def _refs(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        found.extend(v for k, v in node.items() if k == "$ref")
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def test_the_openapi_document_is_valid_and_every_reference_resolves():
    document = create_app().openapi()
    validate(document)  # raises on the first problem
    schemas = document["components"]["schemas"]
    refs = _refs(document, [])
    assert refs and all(ref.startswith("#/components/schemas/") for ref in refs), [r for r in refs if "components" not in r]
    assert {ref.rsplit("/", 1)[-1] for ref in refs} <= set(schemas)
    assert "$defs" not in json.dumps(document)


def test_the_bodies_that_were_unresolvable_are_documented_in_full():
    schemas = create_app().openapi()["components"]["schemas"]
    for name in ("InvoiceToPayInput", "RefundSequence", "ChangeItem", "FulfillmentItem", "ReturnOrderLineItemInput",
                 "ReturnOrderItemInput"):
        assert schemas[name]["type"] == "object" and schemas[name]["properties"], name
    assert schemas["InvoiceToPayInput"]["required"] == ["invoiceId"]


def test_every_operation_documents_its_errors_in_salesforce_s_shapes():
    document = create_app().openapi()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 is never answered: bad input is a 400
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            errors = {status for status in responses if status[0] in "45"}
            assert {"500", "503"} <= errors, (method, path)
            if path != "/services/data":
                assert {"400", "401", "403", "404"} <= errors, (method, path, sorted(errors))
            if method in ("post", "patch"):
                assert {"409", "413"} <= errors, (method, path)
            rest_api = path.startswith(("/services/data/v{version}/sobjects", "/services/data/v{version}/query"))
            shape = "SObjectError" if rest_api else "ErrorWithOutput"
            for status in errors:
                body = responses[status]["content"]["application/json"]["schema"]
                assert body == {"type": "array", "items": {"$ref": f"#/components/schemas/{shape}"}}, (method, path)
    assert schemas["SObjectError"]["required"] == ["errorCode", "message", "fields"]
    assert set(schemas["ErrorWithOutput"]["properties"]) == {"errorCode", "message", "output", "enhancedErrorType"}
