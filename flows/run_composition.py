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

from compositions.records import invalid_composition, publish_step, publish_summary, record_step
from compositions.check import check
from compositions.inputs import read_inputs
from compositions.run import run_composition_steps
from compositions.saved import load


@flow(name="run-composition", persist_result=True, result_serializer="json")
def run_composition(composition: str, inputs: dict[str, Any] = {}) -> dict[str, Any]:  # noqa: B006 - Prefect copies it
    """Run the composition ``composition`` with ``inputs``; every step's output by step id.

    A retried run resumes: each step runs under an operation id of its own derived from
    this run's, so a step that committed gives back what it made instead of acting twice.

    Args:
        composition: The composition's name (its om-composition block), e.g. return-to-refund.
        inputs: Its inputs by name, e.g. {"returnOrderId": "0RO..."}.
    """
    operation_id = str(flow_run.id)
    found = load(composition)
    problems = check(found)
    if problems:
        raise invalid_composition(found.name, problems)
    values = read_inputs(found, inputs)
    get_run_logger().info("composition %s: %d step(s), inputs %s", found.name, len(found.steps), sorted(values))
    outputs = run_composition_steps(
        found, values, operation_id,
        before=lambda key, step, step_operation: record_step(operation_id=operation_id, composition=found.name,
                                                             key=key, action=step.action, step_operation_id=step_operation),
        after=publish_step)
    publish_summary(found, outputs)
    return to_jsonable_python(outputs)
