"""Money: exact Decimal amounts quantized to the currency's minor unit (domain/money.py)."""

from dataclasses import FrozenInstanceError
from decimal import Decimal

import pytest

from domain.errors import CurrencyMismatchError, InvalidInputError
from domain.money import Money, minor_units, normalize_currency, quantize, to_decimal

# --- minor units and quantization ------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "places"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("usd", 2), ("jpy", 0)],
)
def test_minor_units_follow_iso_4217(currency, places):
    assert minor_units(currency) == places


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("10", "USD", "10.00"),
        ("10.5", "USD", "10.50"),
        ("10.50", "USD", "10.50"),
        ("1000", "JPY", "1000"),
        ("1000.0", "JPY", "1000"),
        ("1.5", "KWD", "1.500"),
        ("1.234", "KWD", "1.234"),
        ("0", "USD", "0.00"),
        ("-3.1", "USD", "-3.10"),
    ],
)
def test_money_is_quantized_to_the_minor_unit(amount, currency, expected):
    money = Money.of(amount, currency)
    assert money.amount == Decimal(expected)
    # Same exponent, not only the same value: str() shows the minor unit.
    assert str(money.amount) == expected
    assert money.amount.as_tuple().exponent == -minor_units(currency)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.005", "USD"), ("0.001", "USD"), ("1.5", "JPY"), ("100.01", "JPY"), ("1.2345", "KWD")],
)
def test_too_many_decimals_are_refused_not_rounded(amount, currency):
    with pytest.raises(InvalidInputError):
        Money.of(amount, currency)
    with pytest.raises(InvalidInputError):
        quantize(Decimal(amount), currency)


def test_trailing_zeros_beyond_the_minor_unit_are_not_extra_precision():
    assert Money.of("10.5000", "USD").amount == Decimal("10.50")
    assert str(Money.of("7.000", "JPY").amount) == "7"


def test_non_strict_quantize_rounds_half_even():
    assert quantize(Decimal("10.005"), "USD", strict=False) == Decimal("10.00")
    assert quantize(Decimal("10.015"), "USD", strict=False) == Decimal("10.02")
    assert quantize(Decimal("2.5"), "JPY", strict=False) == Decimal("2")
    assert quantize(Decimal("3.5"), "JPY", strict=False) == Decimal("4")


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.1, 10.0, 1e-2, float("nan"), float("inf")])
def test_floats_are_refused(value):
    with pytest.raises(InvalidInputError):
        to_decimal(value)
    with pytest.raises(InvalidInputError):
        Money.of(value, "USD")


def test_floats_are_refused_by_the_constructor_too():
    with pytest.raises(InvalidInputError):
        Money(0.5, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_amounts(value):
    with pytest.raises(InvalidInputError):
        to_decimal(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.34", Decimal("12.34")), (12, Decimal("12")), (Decimal("0.10"), Decimal("0.10")), ("-1", Decimal("-1"))],
)
def test_to_decimal_parses_strings_ints_and_decimals_exactly(value, expected):
    result = to_decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_to_decimal_returns_a_decimal_unchanged():
    d = Decimal("1.230")
    assert to_decimal(d) is d


@pytest.mark.parametrize("value", ["abc", "", "1,00", "12.3.4", None, "NaN", "Infinity", "-Infinity", Decimal("NaN")])
def test_to_decimal_refuses_what_is_not_a_finite_amount(value):
    with pytest.raises(InvalidInputError):
        to_decimal(value)


# --- currency codes --------------------------------------------------------------------


def test_currency_code_is_upper_cased():
    assert normalize_currency("usd") == "USD"
    assert Money.of("1", "eur").currency == "EUR"


@pytest.mark.parametrize("code", ["", "US", "USDX", "U1D", "12 ", "US-", None, 840])
def test_bad_currency_codes_are_refused(code):
    with pytest.raises(InvalidInputError):
        normalize_currency(code)
    with pytest.raises(InvalidInputError):
        Money.of("1", code)


@pytest.mark.parametrize("code", ["ßab", "ÜSD"])
def test_non_ascii_currency_codes_are_refused(code):
    with pytest.raises(InvalidInputError):
        normalize_currency(code)


# --- arithmetic and comparison ---------------------------------------------------------


def test_addition_and_subtraction_keep_the_currency_and_quantization():
    a = Money.of("10.50", "USD")
    b = Money.of("0.25", "usd")
    assert a + b == Money.of("10.75", "USD")
    assert a - b == Money.of("10.25", "USD")
    assert -a == Money.of("-10.50", "USD")
    assert (a - a).amount == Decimal("0.00")
    assert not (a - a)
    assert a


def test_comparisons_within_one_currency():
    small, big = Money.of("1", "USD"), Money.of("2", "USD")
    assert small < big and small <= big and big > small and big >= small
    assert small <= Money.of("1.00", "USD") and small >= Money.of("1.00", "USD")
    assert Money.of("1", "USD") == Money.of("1.00", "USD")


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_combining_currencies_raises_currency_mismatch(operation):
    with pytest.raises(CurrencyMismatchError):
        operation(Money.of("1", "USD"), Money.of("1", "EUR"))


def test_currency_mismatch_is_an_invalid_input_error():
    assert issubclass(CurrencyMismatchError, InvalidInputError)
    assert CurrencyMismatchError.error_code == "CURRENCY_MISMATCH"


def test_money_equality_includes_the_currency():
    assert Money.of("1", "USD") != Money.of("1", "EUR")


def test_combining_money_with_a_plain_number_is_a_type_error():
    with pytest.raises(TypeError):
        Money.of("1", "USD") + Decimal("1")  # type: ignore[operator]


def test_zero_and_str():
    assert Money.zero("JPY") == Money.of("0", "JPY")
    assert str(Money.zero("KWD")) == "0.000 KWD"
    assert str(Money.of("10.5", "USD")) == "10.50 USD"


# --- immutability ----------------------------------------------------------------------


def test_money_is_immutable():
    money = Money.of("10.00", "USD")
    with pytest.raises(FrozenInstanceError):
        money.amount = Decimal("0")  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        money.currency = "EUR"  # type: ignore[misc]
    with pytest.raises((FrozenInstanceError, AttributeError, TypeError)):
        money.extra = 1  # type: ignore[attr-defined]
    assert money == Money.of("10.00", "USD")


def test_arithmetic_returns_new_values():
    a = Money.of("1", "USD")
    b = a + Money.of("2", "USD")
    assert a == Money.of("1", "USD")
    assert b is not a


def test_money_is_hashable():
    assert len({Money.of("1", "USD"), Money.of("1.00", "USD"), Money.of("1", "EUR")}) == 2


def test_an_amount_too_large_to_quantize_is_an_invalid_input():
    with pytest.raises(InvalidInputError):
        Money.of("1E+26", "USD")


@pytest.mark.parametrize("code", ["ZZZ", "ABC", "usx"])
def test_codes_outside_iso_4217_are_refused(code):
    with pytest.raises(InvalidInputError, match="ISO 4217"):
        Money.of("1.00", code)


@pytest.mark.parametrize("code, places", [("USD", 2), ("eur", 2), ("JPY", 0), ("CLP", 0), ("KWD", 3), ("BHD", 3)])
def test_minor_units_come_from_the_iso_registry(code, places):
    assert minor_units(code) == places
