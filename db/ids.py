"""Salesforce-style record Ids: a 3-character key prefix per object, 12 more characters
(the case-sensitive 15-character Id) and Salesforce's 3-character case checksum (the
case-insensitive 18-character Id). A 15-character Id is read as its 18-character form."""

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
# Records are stored under their 18-character Id; requests may name them by either form.
ID_PATTERN = re.compile(r"^(?:[A-Za-z0-9]{15}|[A-Za-z0-9]{18})$")

KEY_PREFIXES: dict[str, str] = {
    "OrderSummary": "1Os",
    "OrderPaymentSummary": "0aP",
    "Payment": "0a3",
    "Refund": "0a4",
    "RefundLinePayment": "0a6",  # a line's Id is its refund's with this prefix (db.models.refunds)
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
    "ReconciliationFinding": "a0R",  # this engine's own object: a custom object's prefix (a0...)
}


def checksum_suffix(id15: str) -> str:
    """Salesforce's 3 characters that make a 15-character Id case-insensitive: for each
    5-character chunk, the bits of its upper-case letters (first character lowest) pick a
    character of A-Z0-5."""
    return "".join(
        _SUFFIX_ALPHABET[sum(1 << bit for bit, char in enumerate(id15[start:start + 5]) if "A" <= char <= "Z")]
        for start in (0, 5, 10))


def new_id(object_name: str) -> str:
    """A fresh random Id for ``object_name``, e.g. ``50gK3v...`` for a CreditMemo."""
    prefix = KEY_PREFIXES[object_name]
    # One read of the system's randomness, not one per character: bytes from 248 (4 x 62) up
    # are dropped so that every character stays uniform over the alphabet.
    chars: list[str] = []
    while len(chars) < 12:
        chars += [_ALPHABET[b % 62] for b in secrets.token_bytes(16) if b < 248]
    id15 = prefix + "".join(chars[:12])
    return id15 + checksum_suffix(id15)


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value or ""))


def to_18(value: str) -> str:
    """The 18-character form of a valid Id (a 15-character one gains its checksum suffix).
    Records made before Ids carried Salesforce's checksum are found by their 18 characters only."""
    return value + checksum_suffix(value) if len(value) == 15 else value
