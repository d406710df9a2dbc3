"""db.soql: the grammar reads the subset, and what it builds binds every value as a
parameter (the query's text never becomes SQL)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from db.soql import MalformedQueryError, parse, statement


def test_the_subset_parses_into_a_query():
    query = parse("select Id, RefundedAmount from OrderPaymentSummary where OrderSummaryId = '1Os000000000000001' "
                  "and (Id != 'it\\'s' or Id in ('a', 'b') or Id like '0aP%') order by Id desc, CreatedDate limit 7")
    assert (query.object_name, query.fields, query.limit) == ("OrderPaymentSummary", ("Id", "RefundedAmount"), 7)
    assert query.order == (("Id", True), ("CreatedDate", False))
    assert query.where[0] == "and" and query.where[1][0] == ("cmp", "OrderSummaryId", "=", "1Os000000000000001")


def test_values_are_bound_parameters_never_sql():
    hostile = "x' OR '1'='1"
    _, built = statement(parse(f"SELECT Id FROM Refund WHERE Id = '{hostile.replace(chr(39), chr(92) + chr(39))}' "
                               "AND Id > 5"))
    sql, params = str(built), built.compile().params
    assert "1'='1" not in sql and hostile in params.values()
    assert Decimal(5) in params.values()


@pytest.mark.parametrize("text", ["SELECT Id FROM Refund WHERE", "SELECT * FROM Refund", "SELECT Id FROM Refund LIMIT -1",
                                  "SELECT Id FROM Refund WHERE Id = Id", "UPDATE Refund SET Amount = 0"])
def test_anything_else_is_malformed(text):
    with pytest.raises(MalformedQueryError):
        statement(parse(text))


def test_a_15_character_id_is_compared_as_its_18_character_form():
    _, built = statement(parse("SELECT Id FROM OrderPaymentSummary WHERE OrderSummaryId = '001A0000006Vm9r' "
                               "OR Id IN ('0aPA0000006Vm9r', '0aPA0000006Vm9rMAC')"))
    bound = [v for value in built.compile().params.values() for v in (value if isinstance(value, list) else [value])]
    assert sorted(v for v in bound if isinstance(v, str)) == [
        "001A0000006Vm9rIAC", "0aPA0000006Vm9rMAC", "0aPA0000006Vm9rMAC"]
    _, pattern = statement(parse("SELECT Id FROM OrderPaymentSummary WHERE OrderSummaryId LIKE '001A0000006Vm9r'"))
    assert "001A0000006Vm9r" in pattern.compile().params.values()  # a LIKE pattern is compared as given
