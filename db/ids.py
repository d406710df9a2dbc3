"""Salesforce-style 18-character record Ids: a 3-character key prefix per object."""

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
# Records are addressed by their 18-character Id (Salesforce's case-insensitive form).
ID_PATTERN = re.compile(r"^[A-Za-z0-9]{18}$")

KEY_PREFIXES: dict[str, str] = {
    "OrderSummary": "1Os",
    "OrderPaymentSummary": "0aP",
    "Payment": "0a3",
    "Refund": "0a4",
    "CreditMemo": "50g",
    "CreditMemoLine": "50h",
    "Invoice": "3tt",
    "InvoiceLine": "3tu",
    "CreditMemoInvApplication": "5ia",
    "OrderItemSummary": "10u",
    "ChangeOrder": "801",
    "ChangeOrderItem": "802",
    "ReturnOrder": "0RO",
    "ReturnOrderLineItem": "0RL",
    "PaymentGateway": "0b0",
    "PaymentAuthorization": "0Xc",
    "PaymentLineInvoice": "0Xe",
    "PaymentGatewayLog": "0Xt",
    "ProcessException": "1Pe",
}


def new_id(object_name: str) -> str:
    """A fresh random Id for ``object_name``, e.g. ``50gK3v...`` for a CreditMemo."""
    prefix = KEY_PREFIXES[object_name]
    # One read of the system's randomness, not one per character: bytes from 248 (4 x 62) up
    # are dropped so that every character stays uniform over the alphabet.
    chars: list[str] = []
    while len(chars) < 15:
        chars += [_ALPHABET[b % 62] for b in secrets.token_bytes(20) if b < 248]
    return prefix + "".join(chars[:15])


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value or ""))
