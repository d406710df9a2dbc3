"""Check a whole composition against the actions' typed inputs and outputs, before
anything runs: every problem at once, each with its step and field."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from compositions.actions import ACTIONS, REQUEST_MODELS
from compositions.model import Composition, Reference, Step
from actions.fields import MAX_DIGITS
from db.ids import ID_PATTERN

INPUT_KINDS = {"id": ("id",), "amount": ("amount",), "quantity": ("quantity",), "text": ("text",),
               "boolean": ("boolean",), "ids": ("list", ("id",))}
ORDERED = {"greater than", "at least", "less than", "at most"}


@dataclass(frozen=True)
class Problem:
    step: str  # the step id, or "composition"
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.step}.{self.field}: {self.message}" if self.field else f"{self.step}: {self.message}"


def resolve_node(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in node:  # X | None
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            return resolve_node(schema, options[0])
    return node


def kind_of(schema: dict, node: dict, name: str = "") -> tuple:
    """A schema node as a kind: ("id",), ("amount",), ("quantity",), ("text",), ("boolean",),
    ("list", kind), ("object", schema, node)."""
    node = resolve_node(schema, node)
    if "anyOf" in node and {o.get("type") for o in node["anyOf"]} >= {"number", "string"}:
        return ("amount",)  # a Decimal output
    kind = node.get("type")
    if kind == "array":
        return ("list", kind_of(schema, node.get("items", {}), name[:-1] if name.endswith("Ids") else name))
    if kind == "object" or "properties" in node:
        return ("object", schema, node)
    if kind == "boolean":
        return ("boolean",)
    if kind in ("number", "integer"):
        return ("quantity",) if "exclusiveMinimum" in node else ("amount",)
    if node.get("pattern") == ID_PATTERN.pattern or (kind == "string" and name.endswith("Id")):
        return ("id",)
    return ("text",)


def describe(kind: tuple) -> str:
    if kind[0] == "list":
        return f"a list of {describe(kind[1])}"
    return {"id": "a record id", "amount": "an amount", "quantity": "a quantity", "number": "a number", "text": "text",
            "boolean": "a yes/no", "object": "a record"}[kind[0]]


def fits(wanted: tuple, given: tuple) -> bool:
    if wanted[0] == "list" or given[0] == "list":
        return wanted[0] == given[0] == "list" and fits(wanted[1], given[1])
    if wanted[0] == "text":
        return given[0] in ("text", "id")
    if wanted[0] in ("amount", "quantity"):  # an amount is never a quantity; a literal number fits both
        return given[0] in (wanted[0], "number")
    if wanted[0] == given[0] == "object":  # the same input type, e.g. a list of ReturnOrderItemInput
        return wanted[2].get("title") == given[2].get("title")
    return wanted[0] == given[0]


def literal_kind(value: Any) -> tuple | None:
    if isinstance(value, bool):
        return ("boolean",)
    if isinstance(value, (int, Decimal, float)):
        return ("number",)
    if isinstance(value, str):
        return ("id",) if len(value) == 18 and value.isalnum() else ("text",)
    return None


def shown(value: Any) -> str:
    """A literal as a person wrote it: 12.5, 'text', true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, Decimal) else repr(value)


def exact_enough(value: Any) -> bool:
    """Whether a number literal survives being saved as a JSON number (15 significant digits)."""
    digits = Decimal(str(value)).normalize().as_tuple().digits
    return len(digits) <= MAX_DIGITS


def input_kind(input_type: str) -> tuple:
    """The kind of a composition input: a simple one, or an action's input object."""
    if input_type in INPUT_KINDS:
        return INPUT_KINDS[input_type]
    model = REQUEST_MODELS[input_type]
    schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    return ("object", schema, schema)


def comparable(kind: tuple, value: Any) -> bool:
    """Whether a Decision's literal can be compared with a value of ``kind`` (money exactly)."""
    if kind[0] in ("amount", "quantity"):
        if isinstance(value, bool):
            return False
        try:
            return Decimal(str(value)).is_finite()
        except ArithmeticError:
            return False
    if kind[0] == "boolean":
        return isinstance(value, bool)
    return isinstance(value, str)


class _Checker:
    def __init__(self, composition: Composition):
        self.composition = composition
        self.problems: list[Problem] = []
        self.inputs = {i.name: input_kind(i.type) for i in composition.inputs}
        self.done: dict[str, Step] = {}  # steps before the one in hand
        self.all_ids = [s.id for s in composition.steps]

    def add(self, step: str, field: str, message: str) -> None:
        self.problems.append(Problem(step, field, message))

    def reference(self, step: Step, field: str, ref: str, item: tuple | None) -> tuple | None:
        """The kind a reference holds, or None (a problem was added)."""
        head, *path = ref.split(".")
        if head == "inputs":
            if path[0] not in self.inputs:
                return self.add(step.id, field, f"{ref}: the composition has no input '{path[0]}'")
            kind, path = self.inputs[path[0]], path[1:]
        elif head == "item":
            if item is None:
                return self.add(step.id, field, f"{ref}: 'item' exists only in a step with for_each")
            kind = item
        else:
            target = path[0]
            if target not in self.all_ids:
                return self.add(step.id, field, f"{ref}: there is no step '{target}'")
            if target not in self.done:
                return self.add(step.id, field, f"{ref}: step '{target}' runs after this one (or is this one): "
                                                 "a step may use only earlier steps' outputs (no cycles)")
            referenced = self.done[target]
            spec = ACTIONS.get(referenced.action)
            if spec is None:
                return None  # reported at that step
            schema = spec.output_schema()
            kind, path = ("object", schema, schema), path[1:]
            if referenced.for_each:
                kind = ("list", kind)
        for name in path:
            inner = kind[1] if kind[0] == "list" else kind
            if inner[0] != "object":
                return self.add(step.id, field, f"{ref}: {describe(kind)} has no field '{name}'")
            _, schema, node = inner
            props = node.get("properties", {})
            if name not in props:
                known = ", ".join(props) or "none"
                return self.add(step.id, field, f"{ref}: no field '{name}' here (fields: {known})")
            found = kind_of(schema, props[name], name)
            kind = ("list", found) if kind[0] == "list" else found  # a field of each element (lists stay nested)
        return kind

    def value(self, step: Step, field: str, wanted: tuple, value: Any, item: tuple | None) -> None:
        if isinstance(value, Reference):
            given = self.reference(step, field, value.ref, item)
            if given is not None and not fits(wanted, given):
                self.add(step.id, field, f"{value.ref} is {describe(given)}, {describe(wanted)} is due")
            return
        if wanted[0] == "list":
            if not isinstance(value, list):
                return self.add(step.id, field, f"a list is due, not {shown(value)}")
            for index, element in enumerate(value):
                self.value(step, f"{field}[{index}]", wanted[1], element, item)
            return
        if isinstance(value, list):
            return self.add(step.id, field, "one value is due, not a list")
        if wanted[0] == "object":
            if not isinstance(value, dict):
                return self.add(step.id, field, f"{describe(wanted)} (its fields) is due, not {shown(value)}")
            self.fields(step, f"{field}.", wanted[1], wanted[2], value, item)
            return
        if value is None:
            return
        given = literal_kind(value)
        if given is None or not fits(wanted, given):
            self.add(step.id, field, f"{shown(value)} is not {describe(wanted)}")
        elif given == ("number",) and not exact_enough(value):
            self.add(step.id, field, f"{shown(value)} has more than {MAX_DIGITS} significant digits")

    def fields(self, step: Step, prefix: str, schema: dict, node: dict, values: dict, item: tuple | None) -> None:
        node = resolve_node(schema, node)
        props = node.get("properties", {})
        for name in values:
            if name not in props:
                self.add(step.id, f"{prefix}{name}", f"the action has no input '{name}' (inputs: {', '.join(props)})")
        for name in node.get("required", []):
            if values.get(name) is None:
                self.add(step.id, f"{prefix}{name}", "a required input is missing")
        for name, value in values.items():
            if not prefix:
                self.guarded(step, name, value)
            if name not in props or value is None:
                continue
            allowed = resolve_node(schema, props[name]).get("enum")
            if allowed and not isinstance(value, Reference) and value not in allowed:
                self.add(step.id, f"{prefix}{name}", f"{shown(value)} is not one of {', '.join(map(str, allowed))}")
                continue
            self.value(step, f"{prefix}{name}", kind_of(schema, props[name], name), value, item)

    def guarded(self, step: Step, field: str, value: Any) -> None:
        """An input taken from a step that may be skipped (it has a Decision) needs a Decision
        of this step's on that step's output: else the run would stop here, after the earlier
        steps have acted. (An element of a list may come from one: it is dropped.)"""
        if not isinstance(value, Reference) or not value.ref.startswith("steps."):
            return
        source = value.ref.split(".")[1]
        if source in self.done and self.done[source].when is not None and not (
                step.when and step.when.ref.startswith(f"steps.{source}.")):
            self.add(step.id, field, f"step '{source}' may be skipped (it has a Decision): give this step a Decision "
                                     f"on steps.{source} (e.g. steps.{source}.<field> is set)")

    def step(self, step: Step) -> None:
        spec = ACTIONS.get(step.action)
        if spec is None:
            self.add(step.id, "action", f"unknown action '{step.action}' (actions: {', '.join(ACTIONS)})")
            return
        item = None
        if step.for_each:
            over = self.reference(step, "for_each", step.for_each, None)
            if over is not None:
                if over[0] != "list":
                    self.add(step.id, "for_each", f"{step.for_each} is {describe(over)}, not a list to loop over")
                else:
                    item = over[1]
        if step.when:
            compared = self.reference(step, "when", step.when.ref, item)
            if compared is not None and step.when.operator not in ("is set", "is not set"):  # any value may be absent
                if compared[0] in ("list", "object"):
                    self.add(step.id, "when", f"{step.when.ref} is {describe(compared)}: a Decision compares one value")
                elif step.when.operator in ORDERED and compared[0] not in ("amount", "quantity"):
                    self.add(step.id, "when", f"'{step.when.operator}' compares numbers; {step.when.ref} is {describe(compared)}")
                elif not comparable(compared, step.when.value) or (
                        isinstance(step.when.value, Decimal) and not exact_enough(step.when.value)):
                    self.add(step.id, "when", f"{shown(step.when.value)} cannot be compared with {describe(compared)}")
        schema = spec.input_schema()
        self.fields(step, "", schema, schema, step.inputs, item)

    def run(self) -> list[Problem]:
        seen = set()
        for step in self.composition.steps:
            if step.id in seen:
                self.add(step.id, "id", "two steps have this id")
            seen.add(step.id)
            self.step(step)
            self.done[step.id] = step
        return self.problems


def check(composition: Composition) -> list[Problem]:
    """Every problem of ``composition``, in step order; empty when it may run.

    Example:
        ```python
        problems = check(Composition.model_validate(yaml.safe_load(path.read_text())))
        ```
    """
    return _Checker(composition).run()
