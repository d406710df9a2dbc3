"""Where the accounting export keeps its copy of the refunds."""

from prefect.blocks.core import Block
from pydantic import Field


class AccountingExport(Block):
    """The external ledger the ``export-refunds`` deployment keeps in step with the refunds:
    a JSON file holding every refund as the refunds API shows it, keyed by id, plus how far
    the export has read the refund events.

    Example:
        ```python
        from blocks import AccountingExport

        AccountingExport(path="/var/lib/om/refunds-ledger.json").save("accounting", overwrite=True)
        ```

        Load it:
        ```python
        from blocks import AccountingExport

        export = AccountingExport.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "OM Accounting Export"
    _block_type_slug = "om-accounting-export"
    _description = "A JSON file the Order Management engine keeps in step with its refunds, for accounting."

    path: str = Field(description="The JSON file (written atomically: a new file renamed over the old).")
    settle_seconds: float = Field(
        default=5.0, ge=0, le=300,
        description="Read only events older than this, so a transaction still committing is not skipped.")
