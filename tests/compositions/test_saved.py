"""Compositions as block documents and files: the shipped files check clean and are
registered without overwriting an operator's edit; an operator's is exported to a file
that reads back the same."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import yaml

from blocks import CompositionBlock
from compositions.check import check
from compositions.files import SHIPPED, read, shipped, to_yaml
from compositions.model import Composition
from compositions.saved import export, load, register_shipped
from domain.errors import InvalidInputError


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_shipped_composition_checks_clean_and_is_named_as_its_file(path):
    composition = read(path)
    assert composition.name == path.stem
    assert check(composition) == []


def test_the_composed_flows_are_compositions_now_not_python_flows():
    from runtime.serve import load_flows

    composed = {"cancel-to-refund", "return-to-refund", "invoice-to-funds"}
    assert composed <= {c.name for c in shipped()}
    assert not composed & {flow.name for flow in load_flows()}
    assert "run-composition" in {flow.name for flow in load_flows()}


def test_registering_keeps_an_operators_edit(prefect_api):
    original = load("return-to-refund")
    edited = original.model_copy(update={"description": "edited by an operator"})
    CompositionBlock.of(edited).save("return-to-refund", overwrite=True)
    try:
        assert "return-to-refund" not in register_shipped()
        assert load("return-to-refund").description == "edited by an operator"
    finally:
        CompositionBlock.of(original).save("return-to-refund", overwrite=True)


def test_a_missing_shipped_composition_is_registered_again(prefect_api):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("invoice-to-funds", block_type_slug="om-composition")
        client.delete_block_document(document.id)
    assert register_shipped() == ["invoice-to-funds"]
    assert load("invoice-to-funds") == read(SHIPPED / "invoice-to-funds.yaml")


def test_an_operators_composition_exports_to_a_file_that_reads_back_the_same(prefect_api, tmp_path):
    name = f"mine-{uuid.uuid4().hex[:6]}"
    mine = Composition.model_validate({
        "name": name, "description": "refund some excess funds",
        "inputs": [{"name": "orderSummaryId", "type": "id"}, {"name": "excess", "type": "amount"}],
        "steps": [{"id": "refund", "action": "ensure-refunds-async",
                   "when": {"ref": "inputs.excess", "operator": "at least", "value": 0.01},
                   "inputs": {"orderSummaryId": {"ref": "inputs.orderSummaryId"}, "excessFundsAmount": {"ref": "inputs.excess"},
                              "invoicesToPay": [], "isAllowPartial": False}}]})
    CompositionBlock.of(mine).save(name)
    text = export(name)
    assert yaml.safe_load(text)["steps"][0]["when"]["value"] == 0.01  # a number in the file, exact when read
    assert Composition.model_validate(yaml.safe_load(text)) == mine == load(name)
    assert to_yaml(mine) == text
    # the command line does the same, then checks the file
    out = tmp_path / f"{name}.yaml"
    subprocess.run([sys.executable, "-m", "cli.main", "compositions", "export", name, "--out", str(out)], check=True)
    assert read(out) == mine
    checked = subprocess.run([sys.executable, "-m", "cli.main", "compositions", "check", str(out)],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and "ok" in checked.stdout
    with pytest.raises(InvalidInputError, match="no composition named"):
        load(f"none-{uuid.uuid4().hex[:6]}")


def test_the_check_command_lists_every_problem_and_fails(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"name": "broken", "steps": [
        {"id": "memo", "action": "create-credit-memo", "inputs": {"changeOrderIds": [{"ref": "steps.later.id"}]}},
        {"id": "later", "action": "no-such-action"}]}))
    checked = subprocess.run([sys.executable, "-m", "cli.main", "compositions", "check", str(broken)],
                             capture_output=True, text=True)
    assert checked.returncode == 1
    for where in ("memo.orderSummaryId", "memo.changeOrderIds[0]", "later.action"):
        assert where in checked.stdout, checked.stdout


def test_the_forms_lists_match_the_actions():
    """The block form offers the actions and input types that compositions.actions knows."""
    import typing

    from compositions.actions import ACTIONS, REQUEST_MODELS
    from compositions.model import ACTION_NAMES, InputType

    assert list(ACTION_NAMES) == list(ACTIONS)
    assert set(typing.get_args(InputType)) == {"id", "amount", "quantity", "text", "boolean", "ids", *REQUEST_MODELS}
