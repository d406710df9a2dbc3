"""sObject create and read: the records a Salesforce REST client may set up and read back.

Callers create order summaries, payment summaries, payments, credit memos, invoices,
gateways and process exceptions; everything else (refunds, logs) is written by the actions
and is read-only. Ledger amounts are never taken from the caller: a processed payment
raises its summary's CapturedAmount; a credit memo's Balance starts at its TotalAmountWithTax.
"""

from __future__ import annotations

import re
import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from types import UnionType

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict
from pydantic.alias_generators import to_pascal
from sqlalchemy import select
from sqlmodel import Field, Session, SQLModel

from db.announcements import announce
from db.ids import KEY_PREFIXES, new_id
from db.ledger import get_or_raise
from db.models import (
    ReconciliationFinding, ReconciliationFindingPublic, ReturnOrder, ReturnOrderLineItem, ReturnOrderLineItemPublic, ReturnOrderPublic,
    ChangeOrder, ChangeOrderItem, ChangeOrderItemPublic, ChangeOrderPublic, OrderItemSummary, OrderItemSummaryCreate,
    OrderItemSummaryPublic,
    PaymentApplicationType, PaymentAuthorization, PaymentAuthorizationCreate, PaymentAuthorizationPublic,
    PaymentLineInvoice,
    PaymentLineInvoicePublic,
    BillingDocumentCreate,
    CreditMemo, CreditMemoCreate, CreditMemoInvApplication, CreditMemoInvApplicationPublic, CreditMemoLine,
    CreditMemoLinePublic, CreditMemoPublic, GatewayProvider, Invoice, InvoiceCreate, InvoiceLine, InvoiceLinePublic,
    InvoicePublic, OrderPaymentSummary, OrderPaymentSummaryCreate,
    OrderPaymentSummaryPublic, OrderSummary, OrderSummaryCreate, OrderSummaryPublic, Payment, PaymentCreate,
    PaymentGateway, PaymentGatewayCreate, PaymentGatewayLog, PaymentGatewayLogPublic, PaymentGatewayPublic,
    PaymentPublic, PaymentStatus, ProcessException, ProcessingMode, ProcessExceptionCreate, ProcessExceptionPublic, Refund,
    RefundLinePaymentPublic, RefundPublic, RefundStatus,
)
from db.models.refunds import refund_of_line_payment
from db.models.shapes import RecordId
from db.record_events import sobject_created
from domain.errors import CurrencyMismatchError, InvalidInputError, NotFoundError, RequiredFieldMissingError
from domain.money import quantize


def create_order_summary(*, session: Session, obj_in: OrderSummaryCreate) -> OrderSummary:
    record = OrderSummary(id=new_id("OrderSummary"), **obj_in.model_dump())
    session.add(record)
    return record


def create_payment_gateway(*, session: Session, obj_in: PaymentGatewayCreate) -> PaymentGateway:
    if obj_in.gateway_provider == GatewayProvider.STRIPE and not obj_in.merchant_credential_name:
        raise InvalidInputError("MerchantCredentialName is required for a Stripe gateway: it names the OM Stripe Gateway block")
    record = PaymentGateway(id=new_id("PaymentGateway"), **obj_in.model_dump(exclude=PaymentGatewayCreate.IGNORED))
    session.add(record)
    return record


def create_order_payment_summary(*, session: Session, obj_in: OrderPaymentSummaryCreate) -> OrderPaymentSummary:
    order = get_or_raise(session, OrderSummary, obj_in.order_summary_id)
    record = OrderPaymentSummary(
        id=new_id("OrderPaymentSummary"), currency_iso_code=order.currency_iso_code, **obj_in.model_dump()
    )
    session.add(record)
    return record


def _gateway_for(session: Session, obj_in: PaymentCreate | PaymentAuthorizationCreate) -> PaymentGateway | None:
    """The gateway a new payment or authorization names. Salesforce's ProcessingMode
    (Object Reference v67): a Salesforce-mode record moves money through its gateway, which
    it must name; an External one was taken outside and may name none (if it names one, the
    gateway must exist, and is kept for the record: its money still moves outside)."""
    if obj_in.payment_gateway_id is None:
        if obj_in.processing_mode == ProcessingMode.SALESFORCE:
            raise RequiredFieldMissingError(
                "Required fields are missing: [PaymentGatewayId] (a record whose ProcessingMode is Salesforce moves its "
                "money through a payment gateway; ProcessingMode External records one taken outside)",
                fields=["PaymentGatewayId"])
        return None
    return get_or_raise(session, PaymentGateway, obj_in.payment_gateway_id)


def _record_on_locked_summary(session: Session, table, obj_in, *, rollup: str, reference_prefix: str, what: str):
    """A payment or authorization of an order payment summary, created under the order's
    lock; a processed one raises the summary's ``rollup`` amount in the same transaction.

    Without OrderPaymentSummaryId it belongs to no summary yet (Salesforce creates payments
    first and the summary from them: Create Order Payment Summary): CurrencyIsoCode is then
    required, and it rolls up nowhere until a summary takes it."""
    ops = None
    if obj_in.order_payment_summary_id is not None:
        ops = get_or_raise(session, OrderPaymentSummary, obj_in.order_payment_summary_id)
        get_or_raise(session, OrderSummary, ops.order_summary_id, for_update=True)  # serialize with refunds and captures
        # Read the summary again under the lock: the copy above may predate a concurrent write.
        session.refresh(ops, with_for_update=True)
        if obj_in.currency_iso_code not in (None, ops.currency_iso_code):
            raise CurrencyMismatchError(f"CurrencyIsoCode {obj_in.currency_iso_code} is not the currency of order payment "
                                        f"summary {ops.id} ({ops.currency_iso_code})")
    elif obj_in.currency_iso_code is None:
        raise RequiredFieldMissingError(
            "Required fields are missing: [OrderPaymentSummaryId] (or CurrencyIsoCode, for a record that belongs to no "
            "order payment summary yet)", fields=["OrderPaymentSummaryId"])
    currency = ops.currency_iso_code if ops is not None else obj_in.currency_iso_code
    gateway = _gateway_for(session, obj_in)
    data = obj_in.model_dump(exclude={"currency_iso_code"})
    data["amount"] = quantize(obj_in.amount, currency)
    if not data["gateway_ref_number"] and gateway is not None and obj_in.processing_mode == ProcessingMode.SALESFORCE:
        if gateway.gateway_provider != GatewayProvider.SANDBOX:
            raise InvalidInputError(f"GatewayRefNumber (the {what}'s id at the gateway) is required")
        data["gateway_ref_number"] = f"{reference_prefix}{secrets.token_hex(8)}"
    record = table(id=new_id(table.__name__), currency_iso_code=currency, **data)
    if ops is not None and record.status == PaymentStatus.PROCESSED:
        setattr(ops, rollup, getattr(ops, rollup) + record.amount)
        session.add(ops)
    session.add(record)
    return record


def create_payment(*, session: Session, obj_in: PaymentCreate) -> Payment:
    """A payment; a processed one raises its summary's CapturedAmount."""
    return _record_on_locked_summary(session, Payment, obj_in, rollup="captured_amount", reference_prefix="ch_sbx_",
                                     what="charge")


def create_order_item_summary(*, session: Session, obj_in: OrderItemSummaryCreate) -> OrderItemSummary:
    order = get_or_raise(session, OrderSummary, obj_in.order_summary_id)
    data = obj_in.model_dump()
    data["unit_price"] = quantize(obj_in.unit_price, order.currency_iso_code)
    data["total_tax_amount"] = quantize(obj_in.total_tax_amount, order.currency_iso_code)
    quantize(obj_in.unit_price * obj_in.quantity_ordered, order.currency_iso_code, strict=False)  # refuses a line too large
    record = OrderItemSummary(id=new_id("OrderItemSummary"), currency_iso_code=order.currency_iso_code, **data)
    session.add(record)
    return record


def create_payment_authorization(*, session: Session, obj_in: PaymentAuthorizationCreate) -> PaymentAuthorization:
    """An authorization; a processed one raises its summary's AuthorizationAmount."""
    return _record_on_locked_summary(session, PaymentAuthorization, obj_in, rollup="authorization_amount",
                                     reference_prefix="auth_sbx_", what="authorization")


def _create_billing_document(session: Session, table: type[CreditMemo | Invoice], obj_in: BillingDocumentCreate):
    """A credit memo or invoice in its order's currency: TotalAmount (pretax) and TotalTaxAmount
    make its total with tax, where its Balance starts."""
    order = get_or_raise(session, OrderSummary, obj_in.reference_entity_id)
    pretax = quantize(obj_in.total_amount, order.currency_iso_code)
    tax = quantize(obj_in.total_tax_amount, order.currency_iso_code)
    record = table(
        id=new_id(table.__name__), order_summary_id=order.id, currency_iso_code=order.currency_iso_code,
        total_amount=pretax + tax, total_tax_amount=tax, balance=pretax + tax, description=obj_in.description,
    )
    session.add(record)
    return record


def create_process_exception(*, session: Session, obj_in: ProcessExceptionCreate) -> ProcessException:
    """A process exception a person or an integration raises (Salesforce supports create). It
    moves no money; its OrderSummaryId, when given, must name an order summary here."""
    if obj_in.order_summary_id is not None:
        get_or_raise(session, OrderSummary, obj_in.order_summary_id)
    record = ProcessException(id=new_id("ProcessException"), **obj_in.model_dump())
    session.add(record)
    return record


def create_credit_memo(*, session: Session, obj_in: CreditMemoCreate) -> CreditMemo:
    return _create_billing_document(session, CreditMemo, obj_in)


def create_invoice(*, session: Session, obj_in: InvoiceCreate) -> Invoice:
    return _create_billing_document(session, Invoice, obj_in)


@dataclass(frozen=True)
class SObjectType:
    """How one object is created (if callers may) and read."""

    table: type[SQLModel]
    public: type[SQLModel]
    create_model: type[SQLModel] | None = None
    create: Callable[..., SQLModel] | None = None
    visible: Callable[[], Any] | None = None
    """The rows the object shows (a SQL condition on ``table``): another row is kept in the
    ledger but is not a record of Salesforce's object, so GET answers NOT_FOUND and SOQL
    leaves it out. None: every row."""
    record_key: Callable[[str], str | None] | None = None
    """The table's primary key of the record an Id of this object names (None: no record),
    for an object whose Ids are not the table's own (RefundLinePayment, a view of Refund);
    SOQL compares its Id through it. None: the Id is the key."""


SOBJECTS: dict[str, SObjectType] = {
    "OrderSummary": SObjectType(OrderSummary, OrderSummaryPublic, OrderSummaryCreate, create_order_summary),
    "OrderPaymentSummary": SObjectType(
        OrderPaymentSummary, OrderPaymentSummaryPublic, OrderPaymentSummaryCreate, create_order_payment_summary
    ),
    "Payment": SObjectType(Payment, PaymentPublic, PaymentCreate, create_payment),
    "PaymentGateway": SObjectType(PaymentGateway, PaymentGatewayPublic, PaymentGatewayCreate, create_payment_gateway),
    "CreditMemo": SObjectType(CreditMemo, CreditMemoPublic, CreditMemoCreate, create_credit_memo),
    "Invoice": SObjectType(Invoice, InvoicePublic, InvoiceCreate, create_invoice),
    "PaymentAuthorization": SObjectType(
        PaymentAuthorization, PaymentAuthorizationPublic, PaymentAuthorizationCreate, create_payment_authorization
    ),
    # Salesforce's PaymentLineInvoice.Type is a restricted picklist Applied/Unapplied (Object
    # Reference v67): an application still Pending (its capture unconfirmed) is the engine's own.
    "PaymentLineInvoice": SObjectType(PaymentLineInvoice, PaymentLineInvoicePublic,
                                      visible=lambda: PaymentLineInvoice.type != PaymentApplicationType.PENDING),
    "OrderItemSummary": SObjectType(OrderItemSummary, OrderItemSummaryPublic, OrderItemSummaryCreate, create_order_item_summary),
    "ChangeOrder": SObjectType(ChangeOrder, ChangeOrderPublic),
    "ChangeOrderItem": SObjectType(ChangeOrderItem, ChangeOrderItemPublic),
    "ReturnOrder": SObjectType(ReturnOrder, ReturnOrderPublic),
    "ReturnOrderLineItem": SObjectType(ReturnOrderLineItem, ReturnOrderLineItemPublic),
    "Refund": SObjectType(Refund, RefundPublic),
    # One line per Processed refund, read from the refund's row (db.models.refunds): Type and
    # HasBeenUnapplied are restricted picklists whose only documented values are Applied and No.
    "RefundLinePayment": SObjectType(Refund, RefundLinePaymentPublic,
                                     visible=lambda: Refund.status == RefundStatus.PROCESSED,
                                     record_key=refund_of_line_payment),
    "PaymentGatewayLog": SObjectType(PaymentGatewayLog, PaymentGatewayLogPublic),
    "ProcessException": SObjectType(
        ProcessException, ProcessExceptionPublic, ProcessExceptionCreate, create_process_exception),
    "CreditMemoInvApplication": SObjectType(CreditMemoInvApplication, CreditMemoInvApplicationPublic),
    "CreditMemoLine": SObjectType(CreditMemoLine, CreditMemoLinePublic),
    "InvoiceLine": SObjectType(InvoiceLine, InvoiceLinePublic),
    # This engine's own (Salesforce has no such object): the differences reconcile-gateway found.
    "ReconciliationFinding": SObjectType(ReconciliationFinding, ReconciliationFindingPublic),
}
assert set(SOBJECTS) <= set(KEY_PREFIXES)


def sobject_type(name: str) -> SObjectType:
    try:
        return SOBJECTS[name]
    except KeyError:
        raise NotFoundError(f"sObject type '{name}' is not supported") from None


def create_sobject(*, session: Session, object_name: str, fields: dict[str, Any]) -> SQLModel:
    """Validate ``fields`` (Salesforce names) and create the record; nothing is written on error."""
    spec = sobject_type(object_name)
    if spec.create is None:
        raise InvalidInputError(f"{object_name} records are created by the actions, not directly")
    obj_in = spec.create_model.model_validate(fields)
    record = spec.create(session=session, obj_in=obj_in)
    session.flush()
    announce(session, lambda: sobject_created(
        object_name, record, spec.public.model_validate(record, from_attributes=True).model_dump(by_alias=True)))
    return record


def _shows(session: Session, spec: SObjectType, record_id: str) -> bool:
    """Whether the row is one of the object's records (``SObjectType.visible``)."""
    found = select(spec.table.id).where(spec.table.id == record_id, spec.visible())
    return session.execute(found).first() is not None


def read_sobject(*, session: Session, object_name: str, record_id: str) -> dict[str, Any]:
    """The record in Salesforce's shape (PascalCase keys, amounts quantized)."""
    spec = sobject_type(object_name)
    key = spec.record_key(record_id) if spec.record_key is not None else record_id
    record = session.get(spec.table, key) if key is not None else None
    if record is None or (spec.visible is not None and not _shows(session, spec, key)):
        raise NotFoundError(f"{object_name} {record_id} does not exist")
    public = spec.public.model_validate(record, from_attributes=True)
    return public.model_dump(by_alias=True)


def _plain_type(annotation: Any) -> Any:
    """``X`` of ``X | None``, ``Annotated[X, ...]``, and so on."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated or (args and typing.get_origin(annotation) in (typing.Union, UnionType)):
        return _plain_type(args[0])
    return annotation


def _field_type(name: str, annotation: Any) -> tuple[str, list[str]]:
    """Salesforce's field type for a Python annotation, and its picklist values."""
    kind = _plain_type(annotation)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "picklist", [member.value for member in kind]
    if typing.get_origin(kind) is typing.Literal:
        return "picklist", list(typing.get_args(kind))
    if kind is bool:
        return "boolean", []
    if kind is Decimal or kind is float:
        return "double", []
    if kind is int:
        return "int", []
    if kind is datetime:
        return "datetime", []
    if name == "Id":
        return "id", []
    return ("reference" if name.endswith("Id") else "string"), []


def _summary(object_name: str, spec: SObjectType, base: str) -> dict[str, Any]:
    return {"name": object_name, "label": re.sub(r"(?<!^)(?=[A-Z])", " ", object_name),
            "keyPrefix": KEY_PREFIXES[object_name], "createable": spec.create is not None,
            "updateable": object_name in UPDATABLE,
            "deletable": False, "queryable": False, "retrieveable": True, "custom": False,
            "urls": {"sobject": f"{base}/{object_name}", "describe": f"{base}/{object_name}/describe",
                     "rowTemplate": f"{base}/{object_name}/{{ID}}"}}


def describe_global(base: str) -> dict[str, Any]:
    """describeGlobal: every object served, summarised (``base``: the sobjects URL path)."""
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [_summary(name, spec, base) for name, spec in SOBJECTS.items()]}


def describe_sobject(object_name: str, base: str) -> dict[str, Any]:
    """Salesforce's DescribeSObjectResult for one object, from its Public (readable) and
    Create (createable) models: the fields, their types, which may be null or created."""
    spec = sobject_type(object_name)
    createable = set()
    if spec.create_model is not None:
        createable = {f.alias or n for n, f in spec.create_model.model_fields.items()}
    updatable = set()
    if object_name in UPDATABLE:
        updatable = {f.alias or n for n, f in UPDATABLE[object_name].model_fields.items()}
    declared = [(f.alias or n, f.annotation, f.title, f.is_required(),
                 next((m.max_length for m in f.metadata if hasattr(m, "max_length")), None))
                for n, f in spec.public.model_fields.items()]
    computed = [(f.alias or n, f.return_type, f.title, True, None) for n, f in spec.public.model_computed_fields.items()]
    fields = []
    for name, annotation, title, required, max_length in declared + computed:
        kind, values = _field_type(name, annotation)
        fields.append({
            "name": name, "label": title or re.sub(r"(?<!^)(?=[A-Z])", " ", name), "type": kind,
            "length": max_length or 0, "nillable": not required, "createable": name in createable,
            "updateable": name in updatable, "filterable": False,
            "picklistValues": [{"label": v, "value": v, "active": True, "defaultValue": False} for v in values],
            "referenceTo": [], "custom": False,
        })
    return {**_summary(object_name, spec, base), "fields": fields}


class ProcessExceptionUpdate(SQLModel):
    """What a person may change on a ProcessException: Salesforce's Status, Description and
    CaseId (Object Reference v67: Update); the rest tells what happened and stays."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="forbid")

    status: Literal["New", "Triaged", "Paused", "Resolved", "Ignored", "Voided"] | None = None
    description: str | None = Field(default=None, max_length=32_000)
    case_id: RecordId | None = None


UPDATABLE: dict[str, type[SQLModel]] = {"ProcessException": ProcessExceptionUpdate}
"""The objects whose records may be updated (PATCH), and which fields; ledger records never."""


def update_sobject(*, session: Session, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
    """Update the fields a person may change; nothing is written on error."""
    spec = sobject_type(object_name)
    model = UPDATABLE.get(object_name)
    if model is None:
        raise InvalidInputError(f"{object_name} records are kept by the engine and cannot be updated")
    changes = model.model_validate(fields).model_dump(exclude_unset=True)
    record = session.get(spec.table, record_id, with_for_update=True)
    if record is None:
        raise NotFoundError(f"{object_name} {record_id} does not exist")
    for name, value in changes.items():
        setattr(record, name, value)
    session.add(record)
