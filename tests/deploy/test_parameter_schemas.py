"""The ensure-refunds flow's parameter schema is a good Prefect UI form (DESIGN.md §4,
"Parameters that make a good form in the Prefect UI"), and the parameters callers
really send (amounts as exact decimal strings) validate to exact Decimals.

The schema is built the way Prefect builds a deployment's ``parameter_openapi_schema``;
test_prefect_yaml.py checks that the deployed schema is this same one.
"""

from __future__ import annotations

import inspect
import re
from decimal import Decimal

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate
from pydantic import ValidationError

from actions.ensure_refunds import EnsureRefundsInput
from db.ids import is_valid_id, new_id
from domain.allocation import AllocationStrategy
from flows.audit_ledger import audit_ledger
from flows.ensure_refunds_async import ensure_refunds_async

ORDER = new_id("OrderSummary")
SUMMARY = new_id("OrderPaymentSummary")
MEMO = new_id("CreditMemo")

# Money is a plain non-negative number in the schema. Deliberately no "multipleOf": 0.01:
# Prefect (jsonschema) checks multipleOf in binary floating point, so 19.99 / 0.01 is
# 1998.9999999999998 and the UI/server refuse 19.99 (and 0.07); the currency's minor
# unit is checked in Decimal by the action instead.
MONEY_SCHEMA = {"type": "number", "minimum": 0}


@pytest.fixture(scope="module")
def schema() -> dict:
    return parameter_schema(ensure_refunds_async.fn).model_dump_for_openapi()


def _resolve(schema: dict, node: dict) -> dict:
    """Follow a local ``$ref`` (``#/definitions/X``), keeping the node's own keywords."""
    if "$ref" not in node:
        return node
    name = node["$ref"].removeprefix("#/definitions/")
    return {**schema["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}


def _input(schema: dict) -> dict:
    return _resolve(schema, schema["properties"]["ensure_refunds_input"])


def _sequence(schema: dict) -> dict:
    return _resolve(schema, _input(schema)["properties"]["sequences"]["items"])


def _without_labels(prop: dict) -> dict:
    return {k: v for k, v in prop.items() if k not in ("title", "description")}


def _all_properties(schema: dict):
    """Every property of the parameters and of every model they use, as (where, property)."""
    for name, prop in schema["properties"].items():
        yield f"parameters.{name}", prop
    for model, definition in schema.get("definitions", {}).items():
        for name, prop in definition.get("properties", {}).items():
            yield f"{model}.{name}", prop


def test_the_flow_schema_is_what_prefect_deploys(schema):
    assert ensure_refunds_async.parameters.model_dump_for_openapi() == schema
    assert list(schema["properties"]) == ["order_summary_id", "ensure_refunds_input"]
    assert schema["required"] == ["order_summary_id", "ensure_refunds_input"]
    assert set(schema["definitions"]) == {"EnsureRefundsInput", "InvoiceToPayInput", "RefundSequence", "AllocationStrategy"}


def test_served_deployment_carries_the_same_schema_and_enforces_it(schema):
    """runtime.serve (the embedded counterpart of prefect.yaml) deploys the same form."""
    from runtime.serve import deployments

    served = {d.name: d for d in deployments()}
    ensure = served["ensure-refunds-async"]
    assert ensure._parameter_openapi_schema.model_dump_for_openapi() == schema
    assert ensure.enforce_parameter_schema is True


@pytest.mark.parametrize("where", ["excessFundsAmount", "sequences[].amount"])
def test_money_fields_are_plain_non_negative_numbers(schema, where):
    prop = (_input(schema)["properties"]["excessFundsAmount"] if where == "excessFundsAmount"
            else _sequence(schema)["properties"]["amount"])
    assert _without_labels(prop) == MONEY_SCHEMA
    assert "multipleOf" not in prop  # see MONEY_SCHEMA: binary-float multipleOf refuses 19.99
    assert "anyOf" not in prop and "format" not in prop  # not pydantic's Decimal "number | string" toggle


def test_schema_accepts_cent_amounts_that_a_binary_multiple_of_would_refuse(schema):
    params = {"order_summary_id": ORDER, "ensure_refunds_input": {
        "excessFundsAmount": 19.99, "sequences": [{"amount": 0.07, "orderPaymentSummaryId": SUMMARY}]}}
    assert validate(params, schema) == []
    # The reason for leaving multipleOf out, shown on Prefect's own validator.
    with_multiple_of = parameter_schema(ensure_refunds_async.fn).model_dump_for_openapi()
    with_multiple_of["definitions"]["EnsureRefundsInput"]["properties"]["excessFundsAmount"]["multipleOf"] = 0.01
    assert validate({"order_summary_id": ORDER, "ensure_refunds_input": {"excessFundsAmount": 19.99}},
                    with_multiple_of) != []


def test_schema_refuses_negative_amounts(schema):
    params = {"order_summary_id": ORDER, "ensure_refunds_input": {"excessFundsAmount": -1}}
    assert validate(params, schema) != []


@pytest.mark.parametrize("field", ["creditMemoId", "excessFundsAmount"])
def test_optional_fields_have_no_null_branch_and_no_default(schema, field):
    model = _input(schema)
    prop = model["properties"][field]
    assert "anyOf" not in prop and "oneOf" not in prop
    assert prop.get("type") != "null" and "null" not in (prop.get("type") if isinstance(prop.get("type"), list) else [])
    assert "default" not in prop
    assert field not in model.get("required", [])
    # ...yet omitting them is valid, and None is what Python gets.
    assert getattr(EnsureRefundsInput.model_validate({}), {"creditMemoId": "credit_memo_id",
                                                          "excessFundsAmount": "excess_funds_amount"}[field]) is None


def test_every_property_has_a_title_and_description(schema):
    props = list(_all_properties(schema))
    assert len(props) >= 10
    for where, prop in props:
        assert prop.get("title"), f"{where} has no title: {prop}"
        assert prop.get("description"), f"{where} has no description: {prop}"


def test_every_model_and_enum_is_described(schema):
    for name, definition in schema["definitions"].items():
        assert definition.get("description"), name


def _docstring_args(fn) -> dict[str, str]:
    """The ``Args:`` section of a Google-style docstring, each entry joined into one line."""
    doc = inspect.getdoc(fn)
    section = doc.split("Args:\n", 1)[1]
    args: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            current = match.group(1)
            args[current] = match.group(2)
        elif line.startswith("        ") and current:
            args[current] += " " + line.strip()
        elif line.strip() == "" or not line.startswith(" "):
            current = None
    return args


def test_top_level_parameters_are_described_from_the_docstring_args(schema):
    args = _docstring_args(ensure_refunds_async.fn)
    assert set(args) == set(schema["properties"]) == set(inspect.signature(ensure_refunds_async.fn).parameters)
    for name, prop in schema["properties"].items():
        assert " ".join(prop["description"].split()) == args[name]
        assert prop["title"] == name  # the UI labels top-level parameters with the Python name


def test_strategy_renders_as_an_enum_with_a_valid_default(schema):
    strategy = _resolve(schema, _input(schema)["properties"]["strategy"])
    assert strategy["type"] == "string"
    assert strategy["enum"] == [s.value for s in AllocationStrategy]
    assert strategy["default"] in strategy["enum"]
    assert strategy["default"] == AllocationStrategy.EXACT_MATCH_ELSE_LARGEST.value
    assert strategy["title"] and strategy["description"]


def test_is_allow_partial_is_a_boolean_switch(schema):
    prop = _input(schema)["properties"]["isAllowPartial"]
    assert prop["type"] == "boolean" and prop["default"] is False


def test_lists_render_as_cards_of_invoice_to_pay_and_of_sequence(schema):
    """Salesforce's shapes (56.0): Invoice To Pay Input {invoiceId}; a sequence's amount optional."""
    model = _input(schema)
    assert model["additionalProperties"] is False
    invoices = model["properties"]["invoicesToPay"]
    assert invoices["type"] == "array" and invoices["items"] == {"$ref": "#/definitions/InvoiceToPayInput"}
    card = schema["definitions"]["InvoiceToPayInput"]
    assert card["required"] == ["invoiceId"] and card["additionalProperties"] is False
    sequences = model["properties"]["sequences"]
    assert sequences["type"] == "array"
    row = _sequence(schema)
    assert row["type"] == "object" and row["additionalProperties"] is False
    assert row["required"] == ["orderPaymentSummaryId"]


ID_SAMPLES = [MEMO, MEMO[:15], MEMO[:17], MEMO + "A", MEMO[:17] + "-", "", "not-an-id", "1Os 00000000000001"]


def test_record_ids_are_patterned_like_the_python_check_and_described_in_words(schema):
    patterned = 0
    for where, prop in _all_properties(schema):
        if prop.get("type") == "string" and "pattern" in prop:
            patterned += 1
            # The UI's check (the schema pattern) and the flow's (db.ids.is_valid_id) agree.
            for sample in ID_SAMPLES:
                assert bool(re.search(prop["pattern"], sample)) == is_valid_id(sample), (where, sample)
            assert re.search(r"\(\w{3}\.\.\.\)", prop["description"]), f"{where}: id prefix not described"
    assert patterned == 4  # order_summary_id, creditMemoId, invoiceId, orderPaymentSummaryId
    assert validate({"order_summary_id": "not-an-id", "ensure_refunds_input": {}}, schema) != []


def test_audit_flow_has_no_parameters():
    assert parameter_schema(audit_ledger.fn).model_dump_for_openapi()["properties"] == {}


# --- what callers send: amounts as exact decimal strings ------------------------------


def test_string_amounts_validate_to_exact_decimals():
    parsed = EnsureRefundsInput.model_validate({
        "creditMemoId": MEMO,
        "excessFundsAmount": "19.99",
        "sequences": [{"amount": "0.07", "orderPaymentSummaryId": SUMMARY}],
        "isAllowPartial": True,
        "strategy": "FewestPayments",
    })
    assert parsed.excess_funds_amount == Decimal("19.99")
    assert isinstance(parsed.excess_funds_amount, Decimal)
    assert parsed.excess_funds_amount.as_tuple() == Decimal("19.99").as_tuple()  # exact digits and exponent
    assert parsed.sequences[0].amount.as_tuple() == Decimal("0.07").as_tuple()
    assert parsed.credit_memo_id == MEMO and parsed.is_allow_partial is True
    assert parsed.strategy is AllocationStrategy("FewestPayments")


def test_string_amounts_are_refused_by_the_schema(schema):
    """The deployment enforces its schema: money is a JSON number (see actions/fields.py)."""
    params = {"order_summary_id": ORDER, "ensure_refunds_input": {"excessFundsAmount": "19.99"}}
    assert validate(params, schema) != []


def test_what_the_facade_sends_passes_the_schema_and_reads_back_exactly(schema):
    """api/flow_parameters.py: validated Decimals travel as floats whose repr is their digits."""
    import json

    from api.flow_parameters import as_parameter

    request = EnsureRefundsInput.model_validate({"excessFundsAmount": "19.99", "sequences": [
        {"amount": "0.07", "orderPaymentSummaryId": SUMMARY}, {"amount": "123456789012.345", "orderPaymentSummaryId": SUMMARY}]})
    params = json.loads(json.dumps({"order_summary_id": ORDER, "ensure_refunds_input": as_parameter(request)}))
    assert validate(params, schema) == []
    parsed = ensure_refunds_async.validate_parameters(params)["ensure_refunds_input"]
    assert [s.amount for s in parsed.sequences] == [Decimal("0.07"), Decimal("123456789012.345")]
    assert parsed.excess_funds_amount == Decimal("19.99")


def test_amounts_beyond_what_a_float_carries_are_refused():
    with pytest.raises(ValidationError, match="15 digits"):
        EnsureRefundsInput.model_validate({"excessFundsAmount": "1234567890123.456"})


def test_flow_run_parameters_from_the_facade_validate_exactly():
    """What the flow engine does with a run's parameters: Flow.validate_parameters."""
    params = ensure_refunds_async.validate_parameters({
        "order_summary_id": ORDER,
        "ensure_refunds_input": {"excessFundsAmount": "19.99",
                                 "sequences": [{"amount": "10.10", "orderPaymentSummaryId": SUMMARY}]},
    })
    request = params["ensure_refunds_input"]
    assert isinstance(request, EnsureRefundsInput)
    assert request.excess_funds_amount.as_tuple() == Decimal("19.99").as_tuple()
    assert request.sequences[0].amount.as_tuple() == Decimal("10.10").as_tuple()


def test_ui_number_inputs_become_the_decimal_a_person_typed():
    parsed = EnsureRefundsInput.model_validate({"excessFundsAmount": 19.99, "sequences": [
        {"amount": 0.07, "orderPaymentSummaryId": SUMMARY}]})
    assert parsed.excess_funds_amount.as_tuple() == Decimal("19.99").as_tuple()
    assert parsed.sequences[0].amount.as_tuple() == Decimal("0.07").as_tuple()


@pytest.mark.parametrize("amount", ["abc", "-0.01", "NaN", "Infinity", "", "1e"])
def test_bad_string_amounts_are_refused(amount):
    with pytest.raises(ValidationError):
        EnsureRefundsInput.model_validate({"excessFundsAmount": amount})


@pytest.mark.parametrize("extra", [{"unknownField": 1}, {"excess_funds_amount": "1.00", "excessFundsAmount": "2.00"}])
def test_unknown_fields_are_refused(extra):
    with pytest.raises(ValidationError):
        EnsureRefundsInput.model_validate(extra)


def _operation_flows():
    from runtime.serve import load_flows

    return [f for f in load_flows() if inspect.signature(f.fn).parameters]


@pytest.mark.parametrize("flow_", _operation_flows(), ids=lambda f: f.name)
def test_every_operation_flow_makes_a_described_form(flow_):
    """Each flow an operator can start from the UI: every field labelled and described,
    every model described, top-level parameters described from the docstring's Args."""
    flow_schema = parameter_schema(flow_.fn).model_dump_for_openapi()
    for where, prop in _all_properties(flow_schema):
        assert prop.get("title"), f"{where} has no title: {prop}"
        assert prop.get("description"), f"{where} has no description: {prop}"
    for name, definition in flow_schema["definitions"].items():
        assert definition.get("description"), name
    args = _docstring_args(flow_.fn)
    assert set(args) == set(flow_schema["properties"])
    for name, prop in flow_schema["properties"].items():
        assert " ".join(prop["description"].split()) == args[name]
