"""The reconcile benchmark runs end to end on 2,000 gateway records, on the session's Prefect
server and a store of its own: the flow finds exactly the planted differences, records
the refunds made outside the engine and nothing else, and the floor reads the same rows.
Speed itself is never asserted."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from sqlalchemy import func
from sqlmodel import select

from bench.reconcile import Measured, Planted, check_run, measure, save
from db.engine import session_scope
from db.models import (
    FindingResolution, FindingStatus, Payment, PaymentGatewayLog, ReconciliationFinding, ReconciliationMatch, Refund,
    RefundStatus,
)
from db.reconciliation import GATEWAY_FUNDING

PLANTED = Planted(altered=7, missing_at_gateway=5, external=3)
RECORDS = 2000


def test_the_bench_finds_the_planted_differences_and_records_the_external_refunds(own_store, prefect_api, tmp_path):
    if not own_store.startswith("postgresql"):
        pytest.skip("the bench loads PostgreSQL (COPY) and measures there")

    bench = measure(own_store, RECORDS, PLANTED)

    seeded, report = bench.seeded, bench.run.report
    assert report["state"] == "COMPLETED"
    assert report["differences"] == {"AmountDiffers": 7, "MissingAtGateway": 5, "MissingInStore": 3}
    assert (report["gateway_records"], report["matched"], report["store_records_checked"]) == (RECORDS, RECORDS - 3 - 7, 5)
    assert (report["new_findings"], report["still_open"], report["resolved"], report["lookups_failed"]) == (15, 0, 0, 0)
    assert bench.floor.report["differences"] == report["differences"]
    assert bench.floor.report["gateway_records"] == RECORDS
    assert bench.ledger_violations == 0

    recorded_ids = set(report["recorded_refund_ids"])
    with session_scope(own_store) as s:
        findings = list(s.exec(select(ReconciliationFinding)))
        by_class: dict[str, list[ReconciliationFinding]] = {}
        for finding in findings:
            by_class.setdefault(finding.difference, []).append(finding)
        assert {d: len(f) for d, f in by_class.items()} == report["differences"]

        altered = by_class["AmountDiffers"]
        assert {f.store_record_id for f in altered} == set(seeded.altered)
        assert all(f.gateway_amount == f.store_amount + D("1.00") and f.status == FindingStatus.OPEN for f in altered)
        missing = by_class["MissingAtGateway"]
        assert {f.store_record_id for f in missing} == set(seeded.missing_at_gateway)
        assert all(f.gateway_reference and f.store_amount == D("7.00") and f.status == FindingStatus.OPEN for f in missing)

        external = by_class["MissingInStore"]  # each made at the gateway outside the engine, and recorded at once
        assert {f.gateway_reference for f in external} == set(seeded.external)
        assert all((f.status, f.resolution) == (FindingStatus.RESOLVED, FindingResolution.RECORDED) for f in external)
        assert {f.recorded_refund_id for f in external} == recorded_ids and len(recorded_ids) == 3

        recorded = list(s.exec(select(Refund).where(Refund.funding_source == GATEWAY_FUNDING)))
        assert {r.id for r in recorded} == recorded_ids
        for refund in recorded:
            payment_id, amount = seeded.external[refund.gateway_ref_number]
            assert (refund.payment_id, refund.amount, refund.status) == (payment_id, amount, RefundStatus.PROCESSED)
            assert s.get(Payment, payment_id).refunded_amount >= amount
            assert s.exec(select(func.count()).select_from(PaymentGatewayLog)
                          .where(PaymentGatewayLog.sf_ref_number == refund.idempotency_key)).one() == 1
        # nothing else was written: the seeded refunds and the three recorded ones, and no match left behind
        assert s.exec(select(func.count()).select_from(Refund)).one() == seeded.store_refunds + 3
        assert s.exec(select(func.count()).select_from(ReconciliationMatch)).one() == 0

    # a run that missed one planted difference fails the bench instead of being measured
    missed = {**report, "differences": {**report["differences"], "AmountDiffers": 6}}
    with pytest.raises(AssertionError, match="did not find what was planted"):
        check_run(seeded, PLANTED, Measured(bench.run.seconds, bench.run.rss_before, bench.run.peak_rss, missed))

    figures = bench.figures().figures
    assert {"reconcile @ 2k: wall", "reconcile @ 2k: records/s", "reconcile @ 2k: peak RSS", "reconcile @ 2k: RSS growth",
            "reconcile floor @ 2k: wall", "reconcile floor @ 2k: records/s", "reconcile / floor @ 2k"} <= set(figures)
    assert figures["reconcile @ 2k: records/s"]["floor"] == figures["reconcile floor @ 2k: records/s"]["value"]

    out = tmp_path / "results.json"  # the bench's key is added; the file's other keys stay as they were
    earlier = {"machine": {"cpus": 1}, "figures": {"sweep memos/s (1,000 memos)": {"value": 1.0}}, "other": [1]}
    out.write_text(json.dumps(earlier))
    save(bench, out)
    written = json.loads(out.read_text())
    assert {k: written[k] for k in earlier} == earlier
    assert written["reconcile"]["records"] == RECORDS and written["reconcile"]["found"] == report["differences"]
    assert written["reconcile"]["machine"]["cpus"] >= 1 and written["reconcile"]["recorded_external_refunds"] == 3
