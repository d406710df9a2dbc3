"""Where the store (the money objects) lives."""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class StoreDatabase(Block):
    """The SQLAlchemy URL of the Order Management store.

    The environment variable OM_DATABASE_URL, when set, wins over the block; the embedded
    default sets it for the processes it starts.

    Example:
        ```python
        from blocks import StoreDatabase

        StoreDatabase(connection_url="postgresql://postgres@127.0.0.1:5432/orders").save("store")
        store = StoreDatabase.load("BLOCK_NAME")  # e.g. "store", which `om-engine up` saves
        url = store.connection_url.get_secret_value()
        ```
    """

    _block_type_name = "OM Store Database"
    _block_type_slug = "om-store-database"
    _description = "Connection URL of the Order Management money store (PostgreSQL or SQLite)."

    connection_url: SecretStr = Field(
        description="SQLAlchemy URL, e.g. postgresql://user:password@host:5432/orders or sqlite:///orders.db."
    )
