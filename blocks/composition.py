"""A composition saved in Prefect: the Blocks page creates, edits and lists them by form."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from compositions.model import Composition, CompositionInput, Step


class CompositionBlock(Block):
    """A flow of Order Management actions, run by the ``run-composition`` deployment.

    The block document's name is the composition's name: the run-composition form and the
    REST path ``/actions/custom/flow/<name>`` (with - or _) start it by that name. Each step
    runs one action; its inputs are literals or references (``{"ref": "inputs.<name>"}``,
    ``{"ref": "steps.<step id>.<output field>"}``, in a Loop ``{"ref": "item"}``). A step
    with ``when`` runs only when its Decision holds; one with ``for_each`` runs once per
    element of that list. The whole composition is checked before its first step runs.

    Example:
        Save one and run it:
        ```python
        from blocks import CompositionBlock

        CompositionBlock(
            description="Refund a credit memo",
            inputs=[{"name": "orderSummaryId", "type": "id"}, {"name": "creditMemoId", "type": "id"}],
            steps=[{"id": "refund", "action": "ensure-refunds-async", "inputs": {
                "orderSummaryId": {"ref": "inputs.orderSummaryId"}, "creditMemoId": {"ref": "inputs.creditMemoId"}}}],
        ).save("refund-a-credit-memo", overwrite=True)
        ```

        Load one (the run-composition flow does so by name):
        ```python
        from blocks import CompositionBlock

        composition = CompositionBlock.load("BLOCK_NAME").composition("BLOCK_NAME")
        ```
    """

    _block_type_name = "OM Composition"
    _block_type_slug = "om-composition"
    _description = ("A composition of Order Management actions (Flow Builder's saved flow): inputs, steps, "
                    "Decisions and Loops, as data. Run it with the run-composition deployment.")

    description: str = Field(default="", description="What it does, for the person choosing it.")
    inputs: list[CompositionInput] = Field(
        default_factory=list, description="What a run is given: each input's name (steps use inputs.NAME) and type.")
    steps: list[Step] = Field(min_length=1, description="The steps, in the order they run.")

    def composition(self, name: str) -> Composition:
        """This block's composition, named ``name`` (its block document's name)."""
        return Composition(name=name, description=self.description, inputs=self.inputs, steps=self.steps)

    @classmethod
    def of(cls, composition: Composition) -> CompositionBlock:
        return cls(description=composition.description, inputs=list(composition.inputs), steps=list(composition.steps))
