"""Where the store lives. One pydantic-settings object, read from the environment."""

import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    """Configuration of the store (the money objects' database)."""

    model_config = SettingsConfigDict(env_prefix="OM_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./om-store.db",
        description="SQLAlchemy URL of the store: postgresql://... (production) or sqlite:///path.",
    )


@functools.cache
def get_store_settings() -> StoreSettings:
    return StoreSettings()
