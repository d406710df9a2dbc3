"""Schema changes go through Alembic: ``upgrade(url)`` brings a store to the newest revision."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import normalize_url
from db.settings import get_store_settings

MIGRATIONS = Path(__file__).parent / "migrations"

# Tables in the store's database that are not the store's: the sandbox gateway's books
# (gateways/sandbox_ledger.py). Migrations 0001 and 0002 created them; the sandbox owns them
# now and creates them where they are missing, so autogenerate must neither drop nor alter them.
NOT_THE_STORES = frozenset({"sandbox_gateway_refund", "sandbox_gateway_capture"})


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's autogenerate filter: leave alone the tables that are not the store's."""
    return not (type_ == "table" and name in NOT_THE_STORES)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url or get_store_settings().database_url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create or upgrade the store's tables."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
