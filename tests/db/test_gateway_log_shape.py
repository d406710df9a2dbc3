"""PaymentGatewayLog in Salesforce's names (Field Reference v67): ReferencedEntityId."""

from __future__ import annotations

from db.engine import session_scope
from db.soql import parse, run
from db.sobjects import describe_sobject, read_sobject
from tests.factories import make_order


def test_a_gateway_log_reads_salesforces_referenced_entity_id_and_is_queried_by_it(store):
    """PaymentGatewayLog.ReferencedEntityId (Field Reference v67); ReferenceEntityId stays as
    the extra it was. The column is indexed: SOQL filters on it."""
    from db.ids import new_id
    from db.models import InteractionType, PaymentGatewayLog

    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"])
        payment = order.payments[order.summaries[0]][0]
        log = PaymentGatewayLog(id=new_id("PaymentGatewayLog"), payment_gateway_id=order.gateway_id,
                                reference_entity_id=payment, interaction_type=InteractionType.CAPTURE, sf_ref_number="k")
        s.add(log)
        log_id = log.id
    with session_scope(store) as s:
        read = read_sobject(session=s, object_name="PaymentGatewayLog", record_id=log_id)
        total, rows = run(s, parse(f"SELECT Id, ReferencedEntityId, ReferenceEntityId FROM PaymentGatewayLog "
                                   f"WHERE ReferencedEntityId = '{payment}'"), offset=0, batch=10)
    assert read["ReferencedEntityId"] == read["ReferenceEntityId"] == payment
    assert (total, rows) == (1, [{"Id": log_id, "ReferencedEntityId": payment, "ReferenceEntityId": payment}])
    described = {f["name"] for f in describe_sobject("PaymentGatewayLog", "/x")["fields"]}
    assert {"ReferencedEntityId", "ReferenceEntityId"} <= described
