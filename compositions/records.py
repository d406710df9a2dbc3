"""What a composition run writes beside its steps' own effects: each step's operation id,
and the artifacts that show every step's resolved inputs and output."""

from __future__ import annotations

import json
import logging
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic_core import to_jsonable_python
from sqlmodel import select

from actions.artifacts import in_a_run
from compositions.check import Problem
from compositions.model import Composition, Step
from compositions.run import StepRun
from db.engine import session_scope
from db.models import CompositionRun, OperationStep
from domain.errors import InvalidInputError

logger = logging.getLogger(__name__)


class InvalidCompositionError(InvalidInputError):
    """The composition does not fit the actions' inputs and outputs; ``problems`` says where."""

    error_code = "INVALID_COMPOSITION"

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems


def invalid_composition(name: str, problems: list[Problem]) -> InvalidCompositionError:
    listed = "\n".join(f"- {problem}" for problem in problems)
    return InvalidCompositionError(f"composition {name} has {len(problems)} problem(s); nothing ran:\n{listed}", problems)


class StoreJournal:
    """A composition run's steps in the store (db.models.OperationStep), and their artifacts."""

    def __init__(self, *, operation_id: str, composition: str):
        self.operation_id, self.composition = operation_id, composition

    def started(self, key: str, step: Step, step_operation_id: str) -> str | None:
        with session_scope() as session:
            found = session.get(OperationStep, step_operation_id)
            if found is not None:
                return found.output
            session.add(OperationStep(id=step_operation_id, operation_id=self.operation_id,
                                      composition=self.composition, step=key, action=step.action))
        return None

    def finished(self, done: StepRun) -> None:
        with session_scope() as session:
            session.get(OperationStep, done.operation_id).output = done.output.model_dump_json(by_alias=True)
        publish_step(done)


def started_with(operation_id: str) -> Composition | None:
    """The composition this run's first attempt pinned (see :func:`pin`), if any."""
    with session_scope() as session:
        found = session.get(CompositionRun, operation_id)
    if found is None:
        return None
    return Composition.model_validate({"name": found.composition, **json.loads(found.definition)})


def pin(operation_id: str, composition: Composition) -> None:
    """Keep the composition this run starts with (once it and the inputs are checked), so an
    edit made while the run is in flight never changes what a resumed run does."""
    with session_scope() as session:
        if session.get(CompositionRun, operation_id) is None:
            session.add(CompositionRun(operation_id=operation_id, composition=composition.name,
                                       definition=composition.model_dump_json(exclude={"name"})))


def steps_of(session, operation_id: str) -> list[OperationStep]:
    """The steps a composition run has started, in the order they started."""
    return list(session.exec(select(OperationStep).where(OperationStep.operation_id == operation_id)
                             .order_by(OperationStep.created_date, OperationStep.id)))


def _json(value: Any) -> str:
    return json.dumps(to_jsonable_python(value), indent=2, sort_keys=True)


def publish_step(done: StepRun) -> None:
    """An artifact of the run: the step's inputs as resolved and its output. Never raises."""
    if not in_a_run():
        return
    try:
        create_markdown_artifact(
            markdown=(f"### Step {done.key} · {done.step.action}\n\nOperation id `{done.operation_id}`\n\n"
                      f"**Inputs, as resolved**\n\n```json\n{_json(done.inputs)}\n```\n\n"
                      f"**Output**\n\n```json\n{_json(done.output.model_dump(by_alias=True))}\n```\n"),
            description=f"step {done.key} ({done.step.action})")
    except Exception:  # noqa: BLE001 - the account of a step must never fail the run (money moved)
        logger.exception("could not publish the artifact of step %s", done.key)


def publish_summary(composition: Composition, outputs: dict[str, Any]) -> None:
    """One table row per step: ran, skipped (its Decision did not hold), or how many Loop runs."""
    if not in_a_run():
        return
    rows = []
    for step in composition.steps:
        output = outputs.get(step.id)
        state = ("skipped" if output is None else f"ran {len(output)} time(s)" if step.for_each else "ran")
        rows.append({"step": step.id, "action": step.action, "state": state})
    try:
        create_table_artifact(table=rows, description=f"composition {composition.name}: its steps")
    except Exception:  # noqa: BLE001
        logger.exception("could not publish the summary of composition %s", composition.name)
