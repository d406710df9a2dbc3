"""Run a checked composition inside a flow run: each step one task run of its action.

A step's effects are keyed by an operation id of its own, ``uuid5(run id, step key)``
(step key: the step id, with ``[n]`` for a Loop's n-th element). The actions already do
their work once per operation id, so a retried run that runs every step again gets back
what each committed step made, and two steps running the same action never share records.
Each step's id is recorded (:class:`db.models.OperationStep`) before it runs, so the
resolvers and a person can lead it back to the run, and its output once it returned, so a
resumed run reads it back instead of asking the action again: the Decisions and Loops
after it see what the first attempt saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid5

from pydantic import BaseModel, ValidationError

from compositions.actions import ACTIONS
from compositions.model import Composition, Decision, Reference, Step
from domain.errors import InvalidInputError

SKIPPED = None
"""What a step that did not run (its Decision did not hold) outputs: references to it
are empty, an empty input is left out, and an empty element of a list is dropped."""


class StepInputError(InvalidInputError):
    """A step's inputs, as resolved at run time, are not what its action takes."""

    error_code = "INVALID_STEP_INPUT"


def step_operation_id(operation_id: str, step_key: str) -> str:
    """The operation id a step's action runs under: the same for the same run and step."""
    return str(uuid5(UUID(operation_id), step_key))


def plain(value: Any) -> Any:
    """An output or input object as plain data by its Salesforce names (Decimals kept)."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True)
    if isinstance(value, list):
        return [plain(element) for element in value]
    return value


@dataclass
class Scope:
    """What references read: the inputs, the outputs of the steps so far, the Loop's element."""

    inputs: dict[str, Any]
    steps: dict[str, Any] = field(default_factory=dict)
    item: Any = None

    def read(self, ref: str) -> Any:
        head, *path = ref.split(".")
        if head == "item":
            value = self.item
        else:
            value = (self.inputs if head == "inputs" else self.steps).get(path[0])
            path = path[1:]
        for name in path:
            value = _field(value, name)
        return value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Reference):
            return self.read(value.ref)
        if isinstance(value, list):  # an element that needs a skipped step's output is dropped
            return [self.resolve(v) for v in value if not self._needs_what_is_missing(v)]
        if isinstance(value, dict):
            return {key: resolved for key, resolved in ((k, self.resolve(v)) for k, v in value.items())
                    if resolved is not SKIPPED}
        return value


    def _needs_what_is_missing(self, element: Any) -> bool:
        if isinstance(element, Reference):
            return self.read(element.ref) is SKIPPED
        if isinstance(element, dict):  # e.g. {"invoiceId": {"ref": "steps.fee-invoice.invoiceId"}}
            return any(isinstance(v, Reference) and self.read(v.ref) is SKIPPED for v in element.values())
        return False


def _field(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, list):  # a field of each element (a Loop step's outputs)
        return [_field(element, name) for element in value]
    return value.get(name)


def holds(decision: Decision, value: Any) -> bool:
    """Whether a Decision holds for ``value``; money and quantities compare as exact Decimals."""
    present = value is not None and value != [] and value != ""
    if decision.operator in ("is set", "is not set"):
        return present == (decision.operator == "is set")
    if not present:  # a comparison with nothing (a skipped step's output) never holds
        return False
    expected = decision.value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        value, expected = Decimal(value), Decimal(str(expected))
    return {
        "equals": lambda: value == expected, "not equals": lambda: value != expected,
        "greater than": lambda: value > expected, "at least": lambda: value >= expected,
        "less than": lambda: value < expected, "at most": lambda: value <= expected,
    }[decision.operator]()


@dataclass(frozen=True)
class StepRun:
    """One run of a step's action, for the record and the artifacts. ``resumed``: its
    output was read back from an earlier attempt of the run, the action was not called."""

    key: str
    step: Step
    operation_id: str
    inputs: dict[str, Any]
    output: BaseModel
    resumed: bool = False


class Journal(Protocol):
    """Where a run keeps its steps (compositions.records.StoreJournal in a flow run)."""

    def started(self, key: str, step: Step, step_operation_id: str) -> str | None:
        """Record that the step starts; the output it returned in an earlier attempt, if any (JSON)."""

    def finished(self, done: StepRun) -> None:
        """Record the step's output."""


def run_step(step: Step, scope: Scope, key: str, operation_id: str, journal: Journal) -> StepRun:
    spec = ACTIONS[step.action]
    inputs = scope.resolve(step.inputs)
    try:
        record_id, request = spec.split(inputs)
    except (ValidationError, KeyError) as exc:
        raise StepInputError(f"step {key} ({step.action}): its inputs as resolved are not what the action takes: "
                             f"{_reason(exc)}") from exc
    own_id = step_operation_id(operation_id, key)
    earlier = journal.started(key, step, own_id)
    if earlier is not None:  # done in an earlier attempt: the same output, so the same Decisions and Loops
        return StepRun(key, step, own_id, inputs, spec.output.model_validate_json(earlier), resumed=True)
    output = spec.run(record_id, request, own_id, task_run_name=f"{key} · {step.action}")
    done = StepRun(key, step, own_id, inputs, output)
    journal.finished(done)
    return done


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())
    return f"{exc} is missing (the step it comes from may not have run)"


def run_composition_steps(composition: Composition, inputs: dict[str, Any], operation_id: str,
                          journal: Journal) -> dict[str, Any]:
    """Run the steps in order; the outputs by step id (a Loop step: a list, a skipped one: None).

    A step the journal knows as done in an earlier attempt is not run again: its output is
    read back, so a resumed run takes the same Decisions and loops over the same elements.
    """
    scope = Scope(inputs={name: plain(value) for name, value in inputs.items()})
    for step in composition.steps:
        if step.for_each:
            outputs = []
            for index, element in enumerate(scope.read(step.for_each) or []):
                inner = Scope(scope.inputs, scope.steps, element)
                if step.when is None or holds(step.when, inner.read(step.when.ref)):
                    outputs.append(plain(run_step(step, inner, f"{step.id}[{index}]", operation_id, journal).output))
            scope.steps[step.id] = outputs
        elif step.when is None or holds(step.when, scope.read(step.when.ref)):
            scope.steps[step.id] = plain(run_step(step, scope, step.id, operation_id, journal).output)
        else:
            scope.steps[step.id] = SKIPPED
    return scope.steps
