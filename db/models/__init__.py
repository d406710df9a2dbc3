"""SQLModel tables of the money objects, with Salesforce's names as their public shape.

One family per object, as in fastapi's full-stack template: ``XBase`` (fields a caller
may set), ``XCreate`` (what sObject create accepts), ``XPublic`` (what is returned,
derived amounts included) and ``X`` (the table). Columns are snake_case; the public
models speak Salesforce's PascalCase field names (``CapturedAmount``, ``OrderSummaryId``).

Ledger amounts (CapturedAmount, RefundedAmount, Pending*Amount, Balance) are read-only
to callers: they move only through payments, refunds and credit applications.

One module per aggregate (``shapes`` holds what they share); every name is importable
from ``db.models`` itself, and importing it registers every table in ``SQLModel.metadata``.
"""

from db.models.shapes import CurrencyCode, PublicShape, RecordId, SalesforceShape
from db.models.orders import (
    ItemQuantities, OrderItemSummary, OrderItemSummaryBase, OrderItemSummaryCreate, OrderItemSummaryPublic, OrderSummary,
    OrderSummaryBase, OrderSummaryCreate, OrderSummaryPublic,
)
from db.models.payments import (
    LedgerAmounts, OrderPaymentSummary, OrderPaymentSummaryBase, OrderPaymentSummaryCreate, OrderPaymentSummaryPublic, Payment,
    PaymentApplicationType, PaymentAuthorization, PaymentAuthorizationBase, PaymentAuthorizationCreate,
    PaymentAuthorizationPublic, PaymentBase, PaymentCreate, PaymentGateway, PaymentGatewayBase, PaymentGatewayCreate,
    PaymentGatewayPublic, PaymentLineInvoice, PaymentLineInvoicePublic, PaymentMethodType, PaymentPublic, PaymentStatus, ProcessingMode,
    available_to_refund,
)
from db.models.changes import (
    ChangeOrder, ChangeOrderItem, ChangeOrderItemPublic, ChangeOrderPublic, ChangeOrderType, ReturnOrder, ReturnOrderLineItem,
    ReturnOrderLineItemPublic, ReturnOrderLineType, ReturnOrderPublic, ReturnOrderStatus,
)
from db.models.billing import (
    BillingDocumentBase, BillingDocumentCreate, BillingDocumentLedger, BillingDocumentPublic, BillingLineFields,
    BillingLinePublic, CreditMemo, CreditMemoCreate, CreditMemoInvApplication, CreditMemoInvApplicationPublic, CreditMemoLine,
    CreditMemoLinePublic, CreditMemoPublic, Invoice, InvoiceCreate, InvoiceLine, InvoiceLinePublic, InvoicePublic,
)
from db.models.refunds import (
    REFUND_API_STATUS, InteractionStatus, InteractionType, PaymentGatewayLog, PaymentGatewayLogPublic, ProcessException,
    ProcessExceptionCreate, ProcessExceptionPublic, Refund, RefundEvent, RefundLinePaymentPublic, RefundPublic, RefundStatus,
    WebhookDelivery,
)
from db.models.engine_bookkeeping import CompositionRun, ExecutorClaim, ExecutorHeartbeat, IdempotentRequest, OperationStep
from db.models.reconciliation import (
    FindingResolution, FindingStatus, ReconciliationFinding, ReconciliationFindingPublic, ReconciliationMatch,
)
from domain.gateway_provider import GatewayProvider

__all__ = [
    "REFUND_API_STATUS", "BillingDocumentBase", "BillingDocumentCreate", "BillingDocumentLedger", "BillingDocumentPublic",
    "BillingLineFields", "BillingLinePublic", "ChangeOrder", "ChangeOrderItem", "ChangeOrderItemPublic", "ChangeOrderPublic", "ChangeOrderType",
    "CompositionRun", "CreditMemo", "CreditMemoCreate", "CreditMemoInvApplication", "CreditMemoInvApplicationPublic",
    "CreditMemoLine", "CreditMemoLinePublic", "CreditMemoPublic", "CurrencyCode", "ExecutorClaim", "ExecutorHeartbeat", "GatewayProvider",
    "IdempotentRequest", "InteractionStatus", "InteractionType", "Invoice", "InvoiceCreate", "InvoiceLine", "InvoiceLinePublic", "InvoicePublic",
    "ItemQuantities", "LedgerAmounts", "OperationStep", "OrderItemSummary", "OrderItemSummaryBase", "OrderItemSummaryCreate",
    "OrderItemSummaryPublic", "OrderPaymentSummary", "OrderPaymentSummaryBase", "OrderPaymentSummaryCreate",
    "OrderPaymentSummaryPublic", "OrderSummary", "OrderSummaryBase", "OrderSummaryCreate", "OrderSummaryPublic", "Payment",
    "PaymentApplicationType", "PaymentAuthorization", "PaymentAuthorizationBase", "PaymentAuthorizationCreate",
    "PaymentAuthorizationPublic", "PaymentBase", "PaymentCreate", "PaymentGateway", "PaymentGatewayBase", "PaymentGatewayCreate",
    "PaymentGatewayLog", "PaymentGatewayLogPublic", "PaymentGatewayPublic", "PaymentLineInvoice", "PaymentLineInvoicePublic",
    "PaymentMethodType", "PaymentPublic", "PaymentStatus", "ProcessingMode", "ProcessException", "ProcessExceptionCreate", "ProcessExceptionPublic", "PublicShape",
    "ReconciliationFinding", "ReconciliationFindingPublic", "ReconciliationMatch", "FindingResolution", "FindingStatus",
    "RecordId", "Refund", "RefundEvent", "RefundLinePaymentPublic", "RefundPublic", "RefundStatus", "ReturnOrder", "ReturnOrderLineItem",
    "ReturnOrderLineItemPublic", "ReturnOrderLineType", "ReturnOrderPublic", "ReturnOrderStatus", "SalesforceShape",
    "WebhookDelivery", "available_to_refund",
]
