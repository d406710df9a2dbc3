"""Refund's Salesforce fields and RefundLinePayment (issue 14, audit row 51; Field Reference
v67 `salesforce-field-reference-refund`, Object Reference v67 `sforce_api_objects_refundlinepayment`).

Each refund here refunds one payment, so a Processed refund is one RefundLinePayment, read
from the refund's row: Id is the refund's with the line's key prefix; Type Applied,
HasBeenUnapplied No (the only values Salesforce documents). GET, SOQL and describe agree."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import inspect, text

from db.engine import get_engine, session_scope
from db.ids import KEY_PREFIXES, new_id
from db.migrate import downgrade, upgrade
from db.models import Payment, Refund, RefundStatus
from db.models.refunds import refund_line_payment_id, refund_of_line_payment
from db.soql import MalformedQueryError, parse, run
from db.sobjects import describe_sobject, read_sobject
from domain.errors import NotFoundError
from tests.conftest import drop_postgres_database, fresh_postgres_database
from tests.factories import make_order


@pytest.fixture
def own_store(store_url, tmp_path, embedded_postgres):
    """A store of its own: the refunds below are written as rows, with no gateway booking them,
    so they stay out of the shared store whose ledger other tests audit."""
    url = f"sqlite:///{tmp_path / 'lines.db'}" if store_url.startswith("sqlite") else fresh_postgres_database(
        embedded_postgres, "om_refund_lines")
    upgrade(url)
    yield url
    if not store_url.startswith("sqlite"):
        drop_postgres_database(url)


def _refund(s, payment: Payment, amount: str, status: RefundStatus, sf_result_code: str | None = None) -> str:
    refund_id = new_id("Refund")
    s.add(Refund(id=refund_id, order_payment_summary_id=payment.order_payment_summary_id, payment_id=payment.id,
                 amount=Decimal(amount), currency_iso_code="USD", status=status, idempotency_key=f"om-refund-{refund_id}",
                 payment_gateway_id=payment.payment_gateway_id, sf_result_code=sf_result_code))
    return refund_id


def _order_with_refunds(store):
    """One payment of 50.00 with a refund in every status; the rollups count the Processed one."""
    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"])
        payment = s.get(Payment, order.payments[order.summaries[0]][0])
        ids = {status: _refund(s, payment, amount, status, code) for status, amount, code in (
            (RefundStatus.PROCESSED, "12.50", "Success"), (RefundStatus.PENDING, "1.00", None),
            (RefundStatus.FAILED, "2.00", "Decline"), (RefundStatus.UNKNOWN, "3.00", "Indeterminate"),
            (RefundStatus.REVERSED, "4.00", "Success"))}
        payment.refunded_amount += Decimal("12.50")
        payment.pending_refund_amount += Decimal("4.00")  # Pending and Unknown hold theirs
        s.add(payment)
        return order, payment.id, ids


def test_a_line_id_is_its_refund_s_with_the_line_prefix_and_salesforce_s_checksum():
    refund_id = new_id("Refund")
    line = refund_line_payment_id(refund_id)
    assert line.startswith(KEY_PREFIXES["RefundLinePayment"]) and line[3:] == refund_id[3:]
    from db.ids import to_18
    assert to_18(line[:15]) == line  # a valid 18-character Id: the 15-character form names it too
    assert refund_of_line_payment(line) == refund_id
    assert refund_of_line_payment(refund_id) is None and refund_of_line_payment(line[:15]) is None


def test_only_a_processed_refund_is_a_refund_line_payment(own_store):
    store = own_store
    order, payment_id, ids = _order_with_refunds(store)
    processed = ids[RefundStatus.PROCESSED]
    line_id = refund_line_payment_id(processed)
    with session_scope(store) as s:
        line = read_sobject(session=s, object_name="RefundLinePayment", record_id=line_id)
        for status, refund_id in ids.items():
            if status != RefundStatus.PROCESSED:
                with pytest.raises(NotFoundError):
                    read_sobject(session=s, object_name="RefundLinePayment", record_id=refund_line_payment_id(refund_id))
        with pytest.raises(NotFoundError):  # a refund's own Id names no line
            read_sobject(session=s, object_name="RefundLinePayment", record_id=processed)
        by_payment = run(s, parse("SELECT Id, RefundId, PaymentId, Amount, Type, HasBeenUnapplied FROM RefundLinePayment "
                                  f"WHERE PaymentId = '{payment_id}'"), offset=0, batch=10)
        by_refund = run(s, parse(f"SELECT Id, Amount FROM RefundLinePayment WHERE RefundId IN ('{processed}', "
                                 f"'{ids[RefundStatus.PENDING]}')"), offset=0, batch=10)
        by_id = run(s, parse(f"SELECT Id, AppliedDate FROM RefundLinePayment WHERE Id = '{line_id[:15]}' ORDER BY Id"),
                    offset=0, batch=10)
        not_a_line = run(s, parse(f"SELECT Id FROM RefundLinePayment WHERE Id = '{processed}'"), offset=0, batch=10)
        payment = read_sobject(session=s, object_name="Payment", record_id=payment_id)
        refund = read_sobject(session=s, object_name="Refund", record_id=processed)
    assert line["Id"] == line_id and (line["RefundId"], line["PaymentId"]) == (processed, payment_id)
    assert (line["Amount"], line["CurrencyIsoCode"], line["Type"], line["HasBeenUnapplied"]) == (
        Decimal("12.50"), "USD", "Applied", "No")
    assert line["ImpactAmount"] == line["EffectiveImpactAmount"] == Decimal("12.50")
    assert line["AppliedDate"] == line["Date"] == line["EffectiveDate"] == refund["LastModifiedDate"]
    assert line["AssociatedRefundLinePaymentId"] is None
    assert by_payment == (1, [{"Id": line_id, "RefundId": processed, "PaymentId": payment_id, "Amount": Decimal("12.50"),
                               "Type": "Applied", "HasBeenUnapplied": "No"}])
    assert by_refund == (1, [{"Id": line_id, "Amount": Decimal("12.50")}])
    assert by_id == (1, [{"Id": line_id, "AppliedDate": line["AppliedDate"]}]) and not_a_line == (0, [])
    # The lines of a payment sum to what it says was refunded (Salesforce's TotalRefundApplied).
    assert sum(r["Amount"] for r in by_payment[1]) == payment["TotalRefundApplied"]


def test_refund_line_payment_is_described_with_salesforce_s_picklists(store):
    fields = {f["name"]: f for f in describe_sobject("RefundLinePayment", "/x")["fields"]}
    assert {"Id", "RefundId", "PaymentId", "Amount", "CurrencyIsoCode", "Type", "HasBeenUnapplied", "AppliedDate", "Date",
            "EffectiveDate", "ImpactAmount", "EffectiveImpactAmount", "AssociatedRefundLinePaymentId"} <= fields.keys()
    assert [v["value"] for v in fields["Type"]["picklistValues"]] == ["Applied"]
    assert [v["value"] for v in fields["HasBeenUnapplied"]["picklistValues"]] == ["No"]
    assert fields["Id"]["type"] == "id" and not any(f["createable"] for f in fields.values())
    assert describe_sobject("RefundLinePayment", "/x")["keyPrefix"] == KEY_PREFIXES["RefundLinePayment"]
    with session_scope(store) as s:
        for soql in ("SELECT Id FROM RefundLinePayment WHERE Type = 'Applied'",
                     "SELECT Id FROM RefundLinePayment WHERE Id LIKE '0a6%'"):
            with pytest.raises(MalformedQueryError):
                run(s, parse(soql), offset=0, batch=10)


def test_refund_reads_salesforce_s_processing_mode_gateway_and_result_code(own_store):
    store = own_store
    order, _payment_id, ids = _order_with_refunds(store)
    with session_scope(store) as s:
        read = {status: read_sobject(session=s, object_name="Refund", record_id=refund_id) for status, refund_id in ids.items()}
        total, rows = run(s, parse("SELECT Id, SfResultCode, ProcessingMode, PaymentGatewayId, GatewayResultCodeDescription "
                                   f"FROM Refund WHERE Id = '{ids[RefundStatus.FAILED]}'"), offset=0, batch=10)
    assert {status: r["SfResultCode"] for status, r in read.items()} == {
        RefundStatus.PROCESSED: "Success", RefundStatus.PENDING: None, RefundStatus.FAILED: "Decline",
        RefundStatus.UNKNOWN: "Indeterminate", RefundStatus.REVERSED: "Success"}
    assert {(r["ProcessingMode"], r["PaymentGatewayId"]) for r in read.values()} == {("Salesforce", order.gateway_id)}
    assert all(r["GatewayResultCodeDescription"] is None for r in read.values())
    assert read[RefundStatus.PROCESSED]["PaymentId"]  # the engine's extras stay
    assert total == 1 and rows[0]["SfResultCode"] == "Decline" and rows[0]["ProcessingMode"] == "Salesforce"


WHEN = "2026-01-01T00:00:00+00:00"
ORDER, OPS, GATEWAY = "1OsAAAAAAAAAAAAAAA", "0aPAAAAAAAAAAAAAAA", "0b0AAAAAAAAAAAAAAA"
PAYMENT, EXTERNAL = "0a3AAAAAAAAAAAAAAA", "0a3BBBBBBBBBBBBBBB"
REFUND, EXTERNAL_REFUND, PENDING_REFUND = "0a4AAAAAAAAAAAAAAA", "0a4BBBBBBBBBBBBBBB", "0a4CCCCCCCCCCCCCCC"


def _insert(connection, table: str, values: dict) -> None:
    columns = ", ".join(values)
    connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def _store_at_0016(connection) -> None:
    money = {"currency_iso_code": "USD", "created_date": WHEN}
    _insert(connection, "order_summary", {"id": ORDER, "order_number": "X", "currency_iso_code": "USD",
                                          "status": "Created", "created_date": WHEN})
    _insert(connection, "payment_gateway", {"id": GATEWAY, "payment_gateway_name": "g", "gateway_provider": "Sandbox",
                                            "status": "Active", "one_refund_at_a_time": False, "created_date": WHEN})
    _insert(connection, "order_payment_summary", {
        "id": OPS, "order_summary_id": ORDER, "method": "Card", "type": "Sale", "authorization_amount": "0",
        "captured_amount": "30.00", "refunded_amount": "15.00", "pending_capture_amount": "0",
        "pending_refund_amount": "1.00", **money})
    for payment, gateway, mode, refunded in ((PAYMENT, GATEWAY, "Salesforce", "10.00"), (EXTERNAL, None, "External", "5.00")):
        _insert(connection, "payment", {
            "id": payment, "order_payment_summary_id": OPS, "payment_gateway_id": gateway, "processing_mode": mode,
            "amount": "15.00", "status": "Processed", "type": "Capture", "payment_method_type": "Card",
            "refunded_amount": refunded, "pending_refund_amount": "1.00" if payment == PAYMENT else "0",
            "applied_amount": "0", **money})
    for refund, payment, amount, status, code in ((REFUND, PAYMENT, "10.00", "Processed", "Decline"),
                                                  (EXTERNAL_REFUND, EXTERNAL, "5.00", "Processed", "Success"),
                                                  (PENDING_REFUND, PAYMENT, "1.00", "Pending", None)):
        key = f"om-refund-{refund}"
        _insert(connection, "refund", {
            "id": refund, "order_payment_summary_id": OPS, "payment_id": payment, "amount": amount, "status": status,
            "type": "Referenced", "funding_source": "ExcessFunds", "idempotency_key": key, "revision": 2,
            "last_modified_date": WHEN, **money})
        _insert(connection, "payment_gateway_log", {
            "id": new_id("PaymentGatewayLog"), "payment_gateway_id": GATEWAY if payment == PAYMENT else None,
            "reference_entity_id": refund, "interaction_type": "Refund",
            "interaction_status": "Initiated" if code is None else "Success", "sf_result_code": code,
            "sf_ref_number": key, "created_date": WHEN})
    # A reversal's log row is not the refund's answer (its SfRefNumber is the key plus ':reversal').
    _insert(connection, "payment_gateway_log", {
        "id": new_id("PaymentGatewayLog"), "payment_gateway_id": GATEWAY, "reference_entity_id": REFUND,
        "interaction_type": "Refund", "interaction_status": "Failed", "sf_result_code": "Reversed",
        "sf_ref_number": f"om-refund-{REFUND}:reversal", "created_date": WHEN})


def test_0017_fills_existing_refunds_from_their_payment_and_gateway_log_and_goes_down(store_url, tmp_path, embedded_postgres):
    url = f"sqlite:///{tmp_path / 'refund_fields.db'}" if store_url.startswith("sqlite") else fresh_postgres_database(
        embedded_postgres, "om_mig_refund_fields")
    try:
        upgrade(url, "0016")
        with get_engine(url).begin() as connection:
            _store_at_0016(connection)
        upgrade(url)
        with session_scope(url) as s:
            read = {r: read_sobject(session=s, object_name="Refund", record_id=r) for r in (REFUND, EXTERNAL_REFUND,
                                                                                            PENDING_REFUND)}
            lines = run(s, parse(f"SELECT Id, RefundId, Amount FROM RefundLinePayment WHERE PaymentId IN ('{PAYMENT}', "
                                 f"'{EXTERNAL}') ORDER BY RefundId"), offset=0, batch=10)
            line = read_sobject(session=s, object_name="RefundLinePayment", record_id=refund_line_payment_id(REFUND))
        assert [(r["ProcessingMode"], r["PaymentGatewayId"], r["SfResultCode"]) for r in read.values()] == [
            ("Salesforce", GATEWAY, "Decline"), ("External", None, "Success"), ("Salesforce", GATEWAY, None)]
        assert lines == (2, [{"Id": refund_line_payment_id(REFUND), "RefundId": REFUND, "Amount": Decimal("10.00")},
                             {"Id": refund_line_payment_id(EXTERNAL_REFUND), "RefundId": EXTERNAL_REFUND,
                              "Amount": Decimal("5.00")}])
        assert line["RefundId"] == REFUND
        assert not {c["name"]: c for c in inspect(get_engine(url)).get_columns("refund")}["processing_mode"]["nullable"]

        downgrade(url, "0016")  # every value can be read again from the payment and the log
        columns = {c["name"] for c in inspect(get_engine(url)).get_columns("refund")}
        assert not columns & {"processing_mode", "payment_gateway_id", "sf_result_code"}
        with get_engine(url).connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM refund")).scalar() == 3
        upgrade(url)  # and back up, filled the same way
        with session_scope(url) as s:
            assert read_sobject(session=s, object_name="Refund", record_id=EXTERNAL_REFUND)["ProcessingMode"] == "External"
    finally:
        if not store_url.startswith("sqlite"):
            drop_postgres_database(url)
