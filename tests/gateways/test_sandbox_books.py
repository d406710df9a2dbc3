"""The sandbox gateway keeps its own books: its tables, created where they are missing."""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from domain.gateway_provider import GatewayProvider
from gateways.contract import GatewayOutcome, RefundCommand
from gateways.registry import adapter_for
from gateways.sandbox import SandboxGatewayAdapter
from gateways.sandbox_engine import books_engine
from gateways.sandbox_ledger import SandboxGatewayRefund, metadata


def test_the_sandbox_creates_its_books_on_an_empty_database_and_books_once_per_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    command = RefundCommand(idempotency_key="k-1", charge_reference="ch_1", amount=Decimal("12.50"), currency="USD")

    first = SandboxGatewayAdapter(store_url=url).refund(command)
    again = SandboxGatewayAdapter(store_url=url).refund(command)

    engine = books_engine(url)
    assert set(inspect(engine).get_table_names()) == set(metadata.tables)
    with Session(engine) as session:
        booked = session.scalars(select(SandboxGatewayRefund)).all()
    assert first.outcome is GatewayOutcome.APPROVED and again.response["idempotent_replayed"] is True
    assert [(row.idempotency_key, row.amount, row.gateway_reference) for row in booked] == [
        ("k-1", Decimal("12.50"), first.gateway_reference)]
    assert booked[0].created_date.tzinfo is not None


@dataclass(frozen=True)
class _Gateway:
    id: str
    gateway_provider: str
    merchant_credential_name: str | None = None


def test_the_registry_takes_any_record_with_a_gateways_fields(tmp_path):
    """No store model needed: plain data with the PaymentGateway fields the registry reads."""
    adapter = adapter_for(_Gateway("0b0000000000000001", GatewayProvider.SANDBOX), store_url=f"sqlite:///{tmp_path / 'g.db'}")
    assert isinstance(adapter, SandboxGatewayAdapter)
