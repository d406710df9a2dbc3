"""Run a composition saved as an ``om-composition`` block (issue 13): Flow Builder's saved
flows, built by an operator in the Prefect UI and run without a deploy.

The whole composition is checked against the actions' typed inputs and outputs, and the
run's inputs against the composition's, before the first step; each step is one task run
named ``<step id> · <action>``, and its resolved inputs and output are an artifact of the
run. The flow run's id is the background operation id.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic_core import to_jsonable_python

from compositions.records import StoreJournal, invalid_composition, pin, publish_summary, started_with
from compositions.check import check
from compositions.inputs import read_inputs
from compositions.run import run_composition_steps
from compositions.saved import load


@flow(name="run-composition", persist_result=True, result_serializer="json")
def run_composition(composition: str, inputs: dict[str, Any] = {}) -> dict[str, Any]:  # noqa: B006 - Prefect copies it
    """Run the composition ``composition`` with ``inputs``; every step's output by step id.

    A retried run resumes the composition it started with: each step runs under an
    operation id of its own derived from this run's, and a step that returned in an
    earlier attempt gives back its recorded output instead of acting again.

    Args:
        composition: The composition's name (its om-composition block), e.g. return-to-refund.
        inputs: Its inputs by name, e.g. {"returnOrderId": "0RO..."}.
    """
    operation_id = str(flow_run.id)
    found = started_with(operation_id) or load(composition)  # a resumed run runs what it started with
    problems = check(found)
    if problems:
        raise invalid_composition(found.name, problems)
    values = read_inputs(found, inputs)
    pin(operation_id, found)
    get_run_logger().info("composition %s: %d step(s), inputs %s", found.name, len(found.steps), sorted(values))
    outputs = run_composition_steps(found, values, operation_id,
                                    StoreJournal(operation_id=operation_id, composition=found.name))
    publish_summary(found, outputs)
    return to_jsonable_python(outputs)
