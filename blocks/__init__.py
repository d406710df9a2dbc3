"""Prefect blocks: configuration and secrets only (found through ``prefect.collections``)."""

from blocks.sandbox_gateway import SandboxGateway
from blocks.store_database import StoreDatabase

__all__ = ["SandboxGateway", "StoreDatabase"]
