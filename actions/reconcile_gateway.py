"""Reconcile Gateway: hold the store against each gateway's own records over a window.

For every gateway account (the PaymentGateway records that name one Stripe block, or the
sandbox's books), the run

1. pages through the gateway's refunds and charges or captures made in the window and
   matches each to the store by the key it was sent with or by the gateway's id
   (``db.reconciliation.match_entries``), classifying it (``domain.reconciliation``);
2. pages through the store's records of that account made in the window that no gateway
   record matched, asks the gateway for each by its id or key (it may have been made at
   the gateway just outside the window), and classifies those;
3. resolves the account's open findings about records in the window that it no longer
   found, so a rerun over the same window adds nothing new and closes what was fixed.

Every difference is a ReconciliationFinding row and, when first found, an
``om.reconciliation.difference`` event. One correction is made, when
``recordExternalRefunds`` is on: a refund made at the gateway outside the engine, on a
charge the store knows, is recorded as a Processed refund at once (its own
``om.refund.recorded-from-gateway`` event), so no later refund can pay that money out
twice. Nothing else moves money; the other differences wait for a person.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from pydantic import AwareDatetime, Field, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.artifacts import Progress
from actions.fields import ActionModel, ShortText, drop_default
from db.engine import session_scope
from db.models import (
    FindingResolution, FindingStatus, OrderPaymentSummary, Payment, PaymentGateway, ReconciliationFinding,
    ReconciliationFindingPublic, Refund,
)
from db.reconciliation import (
    StoreRecord, charge_of_refund, close_findings, fingerprint, forget_matches, match_entries, record_gateway_refund,
    refresh_match_statistics, releases_authorization, remember_matches, save_findings, unmatched_store_records,
    with_context,
)
from db.types import utcnow
from domain.errors import InvalidInputError
from domain.gateway_provider import GatewayProvider
from domain.reconciliation import Difference, GatewayEntry, RecordKind, Settlement, Side, differences
from gateways.contract import ReconcilableGateway
from gateways.registry import GatewayAdapters

PAGE_SIZE = 500
"""Gateway records matched per store transaction, and store records read per page."""

PROGRESS_SECONDS = 2.0
"""How often the progress artifact moves while the gateway's records are read."""

SAMPLE_ROWS = 20
"""Findings shown per difference in the run's table artifacts."""


class ReconcileGatewayInput(ActionModel):
    """Which gateway records to reconcile: by default every gateway's, made in the last 48 hours."""

    window_start: AwareDatetime | SkipJsonSchema[None] = Field(
        default=None, title="From", json_schema_extra=drop_default,
        description="Records made at or after this time (with its time zone); blank for Lookback Hours before To.")
    window_end: AwareDatetime | SkipJsonSchema[None] = Field(
        default=None, title="To", json_schema_extra=drop_default,
        description="Records made before this time; blank for now.")
    lookback_hours: int = Field(
        default=48, ge=1, le=24 * 400, title="Lookback Hours",
        description="The window's length when From is blank. The daily run reads two days, so a record made just "
                    "before one run is read again by the next.")
    gateway: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Gateway", json_schema_extra=drop_default,
        description="A PaymentGateway Id (0b0...) or the name of the gateway block its MerchantCredentialName names; "
                    "blank for every Stripe and sandbox gateway.")
    record_external_refunds: bool = Field(
        default=True, title="Record External Refunds",
        description="Record a refund made at the gateway outside the engine, on a charge the store knows, as a "
                    "Processed refund at once (so it cannot be refunded again). Nothing else is changed.")
    pending_limit_hours: int = Field(
        default=24, ge=0, le=24 * 400, title="Pending Limit (hours)",
        description="A record still pending on either side after this long is reported (PendingTooLong, or "
                    "StatusDiffers when the other side has settled).")

    @model_validator(mode="after")
    def _window_in_order(self):
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise ValueError("From must be before To")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``[From, To)``: To defaults to ``now``, From to Lookback Hours before To."""
        end = self.window_end or now
        return self.window_start or end - timedelta(hours=self.lookback_hours), end


class AccountReconciliation(ActionModel):
    """What one run found on one gateway account."""

    gateway_account: str = Field(description="The provider and block (several PaymentGateway records may share one).")
    payment_gateway_ids: list[str]
    gateway_records: int = Field(description="Records the gateway listed in the window.")
    matched: int = Field(description="Gateway records the store holds the same way.")
    store_records_checked: int = Field(description="Store records no gateway record in the window matched, each "
                                                   "looked up at the gateway.")
    differences: dict[str, int] = Field(description="Differences found by this run, by class (new or still open).")
    new_findings: int = Field(description="Differences not reported before (each told by an event).")
    still_open: int = Field(description="Differences an earlier run reported and this one found again.")
    resolved: int = Field(description="Open findings about the window that this run no longer found.")
    recorded_refund_ids: list[str] = Field(description="Refunds made at the gateway outside the engine, recorded now.")
    lookups_failed: int = Field(description="Store records the gateway could not be asked about (left for the next run).")


class ReconcileGatewayOutput(ActionModel):
    """What one run found, account by account, over the window it read."""

    window_start: datetime
    window_end: datetime
    accounts: list[AccountReconciliation]


def gateway_accounts(gateway: str | None) -> dict[str, list[PaymentGateway]]:
    """The PaymentGateway records to reconcile, by account: a Stripe block is one account;
    every sandbox gateway books in the one sandbox ledger, so naming one reconciles them all
    (the named one first: its block configures the adapter). InvalidInputError if
    ``gateway`` names none."""
    with session_scope() as session:
        records = list(session.exec(
            select(PaymentGateway)
            .where(col(PaymentGateway.gateway_provider).in_([GatewayProvider.STRIPE, GatewayProvider.SANDBOX]))
            .order_by(col(PaymentGateway.created_date), col(PaymentGateway.id))))

    def named(record: PaymentGateway) -> bool:
        return gateway in (record.id, record.merchant_credential_name)

    accounts: dict[str, list[PaymentGateway]] = {}
    for record in sorted(records, key=lambda r: not named(r)) if gateway else records:
        account = ("Sandbox" if record.gateway_provider == GatewayProvider.SANDBOX
                   else f"Stripe:{record.merchant_credential_name}")
        accounts.setdefault(account, []).append(record)
    if gateway:
        accounts = {account: members for account, members in accounts.items() if named(members[0])}
        if not accounts:
            raise InvalidInputError(f"no Stripe or sandbox PaymentGateway has Id or MerchantCredentialName '{gateway}'")
    return accounts


@task(name="reconcile-gateway-records", persist_result=False)
def reconcile_gateway_records(reconcile_input: ReconcileGatewayInput, run_id: str) -> ReconcileGatewayOutput:
    """Reconcile the store with every gateway account's records in the window.

    Args:
        reconcile_input: The window, the gateway, and whether to record external refunds.
        run_id: The id of the flow run doing it: findings name the run that found them.

    Example:
        ```python
        from prefect import flow
        from prefect.runtime import flow_run
        from actions.reconcile_gateway import ReconcileGatewayInput, reconcile_gateway_records

        @flow
        def nightly_reconciliation():
            return reconcile_gateway_records(ReconcileGatewayInput(lookback_hours=24), str(flow_run.id))
        ```
    """
    since, until = reconcile_input.window(utcnow())
    accounts = gateway_accounts(reconcile_input.gateway)
    with session_scope() as session:
        forget_matches(session, run_id, stale=True)
    adapters = GatewayAdapters()
    results = []
    for account, gateways in accounts.items():
        adapter = adapters.for_gateway(gateways[0])
        results.append(AccountRun(account, [g.id for g in gateways], adapter, reconcile_input, run_id, since, until).run())
    return ReconcileGatewayOutput(window_start=since, window_end=until, accounts=results)


class AccountRun:
    """One account's reconciliation within one run."""

    def __init__(self, account: str, gateway_ids: list[str], adapter: ReconcilableGateway,
                 options: ReconcileGatewayInput, run_id: str, since: datetime, until: datetime):
        self.account, self.gateway_ids, self.adapter, self.options = account, gateway_ids, adapter, options
        self.run_id, self.since, self.until = run_id, since, until
        self.now = utcnow()
        self.pending_limit = timedelta(hours=options.pending_limit_hours)
        self.logger = get_run_logger()
        self.listed = self.matched = self.checked = self.opened = self.seen = self.lookups_failed = 0
        self.found: Counter[str] = Counter()
        self.recorded: list[str] = []

    def run(self) -> AccountReconciliation:
        progress = Progress(f"Reconciling {self.account} from {self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC")
        try:
            shown = time.monotonic()
            for page in _pages(self.adapter.list_entries(since=self.since, until=self.until), PAGE_SIZE):
                self._gateway_page(page)
                if time.monotonic() - shown >= PROGRESS_SECONDS:  # a Prefect API call: not one per page
                    progress.update(self._covered(page[-1]), 2)
                    shown = time.monotonic()
            progress.update(1, 2)
            with session_scope() as session:
                refresh_match_statistics(session)
            after = None
            while records := self._store_page(after):
                after = (records[-1].object_name, records[-1].created, records[-1].id)
            resolved = 0
            if self.lookups_failed:  # some records went unread: what was not found again may still be there
                self.logger.warning("%s: %d lookups failed; no finding is resolved by this run", self.account,
                                    self.lookups_failed)
            else:
                with session_scope() as session:
                    resolved = close_findings(session, account=self.account, since=self.since, until=self.until,
                                              run_id=self.run_id)
        finally:
            with session_scope() as session:
                forget_matches(session, self.run_id)
        progress.update(2, 2)
        self.logger.info("%s: %d gateway records, %d matched, %d store records checked; new differences %d, still "
                         "open %d, resolved %d; external refunds recorded %d", self.account, self.listed, self.matched,
                         self.checked, self.opened, self.seen, resolved, len(self.recorded))
        return AccountReconciliation(
            gateway_account=self.account, payment_gateway_ids=self.gateway_ids, gateway_records=self.listed,
            matched=self.matched, store_records_checked=self.checked, differences=dict(self.found),
            new_findings=self.opened, still_open=self.seen, resolved=resolved, recorded_refund_ids=self.recorded,
            lookups_failed=self.lookups_failed,
        )

    def _covered(self, entry: GatewayEntry) -> float:
        """How far through the window the listing is (gateways list oldest or newest first)."""
        window = (self.until - self.since).total_seconds() or 1.0
        return max(0.0, min(1.0, abs((entry.created - self.since).total_seconds()) / window))

    # --- the gateway's side ---------------------------------------------------------------

    def _gateway_page(self, entries: list[GatewayEntry]) -> None:
        self.listed += len(entries)
        unknown_refunds = []
        with session_scope() as session:
            records = match_entries(session, entries, self.gateway_ids)
            findings = []
            pairs = [(entry, record) for entry, record in zip(entries, records, strict=True) if record is not None]
            first_of = remember_matches(session, self.run_id, [(record.id, entry.reference) for entry, record in pairs])
            differing = []
            for entry, record in zip(entries, records, strict=True):
                found = self._compare(entry, record)
                if record is not None and _another_record(entry, record, first_of.get(record.id)):
                    found.append(Difference.DUPLICATE_AT_GATEWAY)
                if record is not None:
                    self.matched += not found
                elif found == [Difference.MISSING_IN_STORE] and entry.kind is RecordKind.REFUND:
                    unknown_refunds.append(entry)
                    continue
                if found:
                    differing.append((entry, record, found))
            described = with_context(session, [record for _entry, record, _found in differing if record is not None])
            by_id = {record.id: record for record in described}
            for entry, record, found in differing:
                record = by_id[record.id] if record is not None else None
                findings += [self._finding(d, entry, record) for d in found]
            self._save(session, findings)
        for entry in unknown_refunds:  # each in a transaction of its own: it may lock its order to record it
            self._refund_not_in_store(entry)

    def _compare(self, entry: GatewayEntry | None, record: StoreRecord | None) -> list[Difference]:
        gateway = None if entry is None else Side(entry.amount, entry.currency, entry.settlement, entry.created)
        store = None if record is None else record.side
        if entry is not None and record is not None and entry.kind is not record.kind:
            if record.kind is RecordKind.AUTHORIZATION:  # captured at the gateway; the store holds it uncaptured
                store = None
            elif entry.kind is RecordKind.AUTHORIZATION:  # the store captured what the gateway still holds uncaptured
                gateway = Side(entry.amount, entry.currency, Settlement.PENDING, entry.created)
        return differences(gateway=gateway, store=store, now=self.now, pending_limit=self.pending_limit)

    def _refund_not_in_store(self, entry: GatewayEntry) -> None:
        """Report a gateway refund the store lacks and, when it may, record it: the refund and
        its finding in one transaction, so a killed run leaves both or neither."""
        with session_scope() as session:
            if releases_authorization(session, entry, self.gateway_ids):
                self.matched += 1  # the authorization's release, as the store holds it: no difference
                return
            payment = charge_of_refund(session, entry, self.gateway_ids)
            payment_id = payment.id if payment else None
            outcome: Refund | str | None = None
            if payment is None:
                why = "the charge it refunds is not in the store"
            elif not self.options.record_external_refunds:
                why = "Record External Refunds is off"
            elif entry.settlement is not Settlement.SUCCEEDED:
                why = f"it is {entry.status} at the gateway; it is recorded once it succeeds"
            else:
                outcome = record_gateway_refund(session, entry, payment_id, run_id=self.run_id)
                why = outcome if isinstance(outcome, str) else ""
            finding = self._finding(Difference.MISSING_IN_STORE, entry, None, payment_id=payment_id)
            finding.update(order_summary_id=self._order_of(session, payment_id))
            if isinstance(outcome, Refund):
                finding.update(status=FindingStatus.RESOLVED, resolution=FindingResolution.RECORDED,
                               resolved_date=utcnow(), resolved_run_id=self.run_id, recorded_refund_id=outcome.id,
                               detail=f"{finding['detail']}; recorded as refund {outcome.id}")
            else:
                finding.update(detail=f"{finding['detail']}; not recorded: {why}")
            self._save(session, [finding])
        if isinstance(outcome, Refund):
            self.recorded.append(outcome.id)
            self.logger.info("recorded refund %s of %s %s made at the gateway outside the engine (%s) on payment %s",
                             outcome.id, entry.amount, entry.currency, entry.reference, payment_id)

    @staticmethod
    def _order_of(session: Session, payment_id: str | None) -> str | None:
        if payment_id is None:
            return None
        return session.exec(select(OrderPaymentSummary.order_summary_id).join(
            Payment, col(Payment.order_payment_summary_id) == col(OrderPaymentSummary.id)).where(Payment.id == payment_id)).first()

    # --- the store's side -----------------------------------------------------------------

    def _store_page(self, after: tuple[str, datetime, str] | None) -> list[StoreRecord]:
        with session_scope() as session:
            records = unmatched_store_records(
                session, run_id=self.run_id, gateway_ids=self.gateway_ids, since=self.since, until=self.until,
                direct_charges=self.adapter.lists_direct_charges, after=after, limit=PAGE_SIZE)
        findings = []
        for record in records:
            self.checked += 1
            try:
                entry = self.adapter.find_entry(record.kind, reference=record.gateway_reference,
                                                idempotency_key=record.idempotency_key,
                                                parent_reference=record.parent_reference)
            except Exception:  # noqa: BLE001 - unanswered: this run cannot tell; the next one asks again
                self.lookups_failed += 1
                self.logger.exception("could not ask the gateway about %s %s", record.object_name, record.id)
                continue
            found = self._compare(entry, record)
            self.matched += entry is not None and not found
            findings += [self._finding(d, entry, record) for d in found]
        with session_scope() as session:
            self._save(session, findings)
        return records

    # --- findings -------------------------------------------------------------------------

    def _finding(self, difference: Difference, entry: GatewayEntry | None, record: StoreRecord | None,
                 *, payment_id: str | None = None) -> dict[str, Any]:
        kind = (entry or record).kind
        gateway_id = record.payment_gateway_id if record else None
        # One finding per difference and store record (the gateway may name one record two
        # ways: a Stripe charge and its payment intent); by the gateway's id when the store
        # has no record, and by both for a second gateway record of one store record.
        by_gateway = entry is not None and (record is None or difference is Difference.DUPLICATE_AT_GATEWAY)
        return {
            "fingerprint": fingerprint(difference, kind, entry.reference if by_gateway else None,
                                       record.id if record else None),
            "difference": difference.value, "record_kind": kind.value, "status": FindingStatus.OPEN,
            "gateway_account": self.account,
            "payment_gateway_id": gateway_id or (self.gateway_ids[0] if len(self.gateway_ids) == 1 else None),
            "gateway_reference": entry.reference if entry else (record.gateway_reference if record else None),
            "gateway_status": entry.status[:40] if entry else None,
            "gateway_amount": entry.amount if entry else None, "gateway_currency": entry.currency if entry else None,
            "store_object": record.object_name if record else None, "store_record_id": record.id if record else None,
            "store_status": record.status if record else None, "store_amount": record.amount if record else None,
            "store_currency": record.currency if record else None,
            "order_summary_id": record.order_summary_id if record else None,
            "payment_id": (record.payment_id if record else None) or payment_id,
            "detail": _detail(difference, entry, record)[:1000],
            # The store record's time when there is one (every store record of a window is read, so
            # a run over it may resolve the finding), else the gateway record's (every one of the
            # window is listed).
            "occurred_date": record.created if record else entry.created,
        }

    def _save(self, session: Session, findings: list[dict[str, Any]]) -> None:
        self.found.update(f["difference"] for f in findings)
        opened, seen = save_findings(session, findings, run_id=self.run_id)
        self.opened += opened
        self.seen += seen


def _another_record(entry: GatewayEntry, record: StoreRecord, first_reference: str | None) -> bool:
    """Whether ``entry`` is a second gateway record of ``record``: the run matched another one
    to it first, or the store knows it by another gateway id (a refund the gateway refused
    moved nothing and is no second one)."""
    if entry.settlement is Settlement.FAILED:
        return False
    if first_reference is not None and first_reference != entry.reference:
        return True
    names = {entry.reference, *entry.aliases}
    return record.kind is entry.kind and record.gateway_reference is not None and record.gateway_reference not in names


def _detail(difference: Difference, entry: GatewayEntry | None, record: StoreRecord | None) -> str:
    at_gateway = f"{entry.kind} {entry.reference} of {entry.amount} {entry.currency} ({entry.status})" if entry else ""
    in_store = f"{record.object_name} {record.id} of {record.amount} {record.currency} ({record.status})" if record else ""
    match difference:
        case Difference.AMOUNT | Difference.CURRENCY:
            return f"The gateway holds {entry.amount} {entry.currency}, the store {record.amount} {record.currency}: " \
                   f"{at_gateway}; {in_store}"
        case Difference.STATUS:
            return f"The gateway says {entry.status}, the store {record.status}: {at_gateway}; {in_store}"
        case Difference.MISSING_IN_STORE:
            held = f" (the store holds only {in_store})" if record else ""
            return f"{at_gateway} at the gateway is not in the store{held}"
        case Difference.MISSING_AT_GATEWAY:
            return f"{in_store} in the store; the gateway has no record of it"
        case Difference.DUPLICATE_AT_GATEWAY:
            return f"{at_gateway} is a second gateway record of {in_store}: the money may have moved twice"
        case _:
            side = in_store or at_gateway
            return f"Pending for longer than the limit: {side}" + (f"; gateway: {at_gateway}" if entry and record else "")


def _pages(entries: Iterator[GatewayEntry], size: int) -> Iterator[list[GatewayEntry]]:
    while page := list(itertools.islice(entries, size)):
        yield page


def findings_of_run(run_id: str, difference: str, limit: int = SAMPLE_ROWS) -> list[ReconciliationFindingPublic]:
    """The first findings of one class that run ``run_id`` found (new or still open), for its artifacts."""
    with session_scope() as session:
        return [ReconciliationFindingPublic.model_validate(finding) for finding in session.exec(
            select(ReconciliationFinding)
            .where(ReconciliationFinding.last_seen_run_id == run_id, ReconciliationFinding.difference == difference)
            .order_by(col(ReconciliationFinding.occurred_date), col(ReconciliationFinding.id)).limit(limit))]
