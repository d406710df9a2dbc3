"""Compositions saved as om-composition blocks: the shipped files registered (never over
an operator's edit), one loaded by name, one exported back to a file."""

from __future__ import annotations

import logging

from prefect.exceptions import ObjectNotFound

from blocks.composition import CompositionBlock
from compositions.files import shipped, to_yaml
from compositions.model import Composition
from domain.errors import InvalidInputError

logger = logging.getLogger(__name__)


def load(name: str) -> Composition:
    """The composition saved under ``name``, or InvalidInputError."""
    try:
        return CompositionBlock.load(name, _sync=True).composition(name)  # also under a running loop
    except (ValueError, ObjectNotFound) as exc:
        raise InvalidInputError(f"there is no composition named '{name}' (an om-composition block)") from exc


def register_shipped() -> list[str]:
    """Save each shipped composition that has no block yet; the names saved.

    One that exists is left as it is, edited or not: the operator's copy wins, and an
    operator who wants the shipped version back deletes the block and starts ``om up``.
    """
    saved = []
    for composition in shipped():
        try:
            existing = CompositionBlock.load(composition.name, _sync=True).composition(composition.name)
        except (ValueError, ObjectNotFound):
            CompositionBlock.of(composition).save(composition.name, _sync=True)
            saved.append(composition.name)
            continue
        if existing != composition:
            logger.info("composition %s was edited in Prefect: the edited one is kept", composition.name)
    return saved


def export(name: str) -> str:
    """The saved composition ``name`` as a YAML file's text (compositions/shipped's shape)."""
    return to_yaml(load(name))
