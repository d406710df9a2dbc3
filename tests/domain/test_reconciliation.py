"""domain.reconciliation.differences: what a finance team flags, record by record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from domain.reconciliation import Difference, Settlement, Side, differences

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LIMIT = timedelta(hours=24)
FRESH, OLD = NOW - timedelta(minutes=5), NOW - timedelta(hours=25)


def side(amount="40.00", settlement=Settlement.SUCCEEDED, *, currency="USD", since=FRESH) -> Side:
    return Side(D(amount), currency, settlement, since)


def found(gateway: Side | None, store: Side | None) -> list[Difference]:
    return differences(gateway=gateway, store=store, now=NOW, pending_limit=LIMIT)


def test_the_same_money_on_both_sides_is_no_difference():
    assert found(side(), side()) == []
    assert found(side(settlement=Settlement.FAILED), side(settlement=Settlement.FAILED)) == []
    assert found(side(settlement=Settlement.REVERSED), side(settlement=Settlement.REVERSED)) == []


def test_amounts_compare_exactly_and_a_currency_difference_hides_the_amount():
    assert found(side("40.00"), side("40.01")) == [Difference.AMOUNT]
    assert found(side("40.00"), side("40.0000")) == []  # the same number, however many places
    assert found(side("40.00", currency="EUR"), side("41.00")) == [Difference.CURRENCY]
    assert found(side(currency="usd"), side(currency="USD")) == []


def test_a_refund_the_gateway_shows_failed_after_it_succeeded_agrees_with_a_reversed_one():
    assert found(side(settlement=Settlement.FAILED), side(settlement=Settlement.REVERSED)) == []


@pytest.mark.parametrize(("gateway", "store"), [
    (Settlement.SUCCEEDED, Settlement.FAILED),
    (Settlement.FAILED, Settlement.SUCCEEDED),
    (Settlement.REVERSED, Settlement.SUCCEEDED),
    (Settlement.SUCCEEDED, Settlement.REVERSED),
    (Settlement.REVERSED, Settlement.FAILED),
])
def test_settled_sides_that_disagree_are_a_status_difference(gateway, store):
    assert found(side(settlement=gateway), side(settlement=store)) == [Difference.STATUS]


def test_a_side_still_deciding_is_in_flight_until_the_limit():
    assert found(side(), side(settlement=Settlement.PENDING, since=FRESH)) == []
    assert found(side(), side(settlement=Settlement.PENDING, since=OLD)) == [Difference.STATUS]
    assert found(side(settlement=Settlement.PENDING, since=FRESH), side()) == []
    assert found(side(settlement=Settlement.PENDING, since=OLD), side()) == [Difference.STATUS]


def test_pending_on_both_sides_past_the_limit_is_pending_too_long():
    pending = Settlement.PENDING
    assert found(side(settlement=pending, since=FRESH), side(settlement=pending, since=FRESH)) == []
    assert found(side(settlement=pending, since=FRESH), side(settlement=pending, since=OLD)) == [Difference.PENDING_TOO_LONG]
    assert found(side("41.00", pending, since=OLD), side(settlement=pending)) == [Difference.AMOUNT, Difference.PENDING_TOO_LONG]


def test_money_the_gateway_moved_that_the_store_lacks():
    assert found(side(), None) == [Difference.MISSING_IN_STORE]
    assert found(side(settlement=Settlement.PENDING), None) == [Difference.MISSING_IN_STORE]
    assert found(side(settlement=Settlement.FAILED), None) == []  # refused at the gateway: nothing moved


def test_money_the_store_says_moved_that_the_gateway_lacks():
    assert found(None, side()) == [Difference.MISSING_AT_GATEWAY]
    assert found(None, side(settlement=Settlement.REVERSED)) == [Difference.MISSING_AT_GATEWAY]
    assert found(None, side(settlement=Settlement.FAILED)) == []
    assert found(None, side(settlement=Settlement.PENDING, since=FRESH)) == []  # about to be sent
    assert found(None, side(settlement=Settlement.PENDING, since=OLD)) == [Difference.PENDING_TOO_LONG]
    assert found(None, None) == []
