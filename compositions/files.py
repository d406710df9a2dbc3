"""Compositions as YAML files: the shipped ones in ``compositions/shipped/``, and an
operator's, exported from its block to be kept in version control."""

from __future__ import annotations

from pathlib import Path

import yaml

from compositions.model import Composition

SHIPPED = Path(__file__).parent / "shipped"


def read(path: Path) -> Composition:
    """The composition in a YAML file (its shape checked, not yet against the actions)."""
    return Composition.model_validate(yaml.safe_load(path.read_text()))


def shipped() -> list[Composition]:
    """The compositions this engine ships, by file name order."""
    return [read(path) for path in sorted(SHIPPED.glob("*.yaml"))]


def to_yaml(composition: Composition) -> str:
    """The composition as a YAML file's text (what :func:`read` reads back the same)."""
    data = composition.model_dump(mode="json", exclude_defaults=True)
    data = {"name": data.pop("name"), **data}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
