"""A read-only subset of SOQL, parsed with a grammar (lark) and run as a SQLAlchemy
statement with bound parameters: no SQL is ever built from the query's text.

    SELECT Id, RefundedAmount FROM OrderPaymentSummary
    WHERE OrderSummaryId = '1Os...' AND (Method = 'Card' OR CapturedAmount > 10)
    ORDER BY CreatedDate DESC LIMIT 500

One object; its fields by Salesforce name (computed ones such as AvailableToRefundAmount
may be selected); WHERE with =, !=, <, >, <=, >=, IN (...), LIKE, AND, OR and parentheses
on indexed fields; ORDER BY indexed fields; LIMIT. Anything else is a MALFORMED_QUERY.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lark import Lark, Transformer, UnexpectedInput
from sqlalchemy import and_, asc, desc, func, or_, select
from sqlmodel import Session

from db.ids import is_valid_id, to_18
from db.sobjects import SOBJECTS, SObjectType
from domain.errors import InvalidInputError

GRAMMAR = r"""
    start: "SELECT"i fields "FROM"i NAME where? order? limit?
    fields: NAME ("," NAME)*
    where: "WHERE"i expr
    ?expr: disjunction
    ?disjunction: conjunction ("OR"i conjunction)*
    ?conjunction: condition ("AND"i condition)*
    ?condition: comparison | membership | likeness | "(" expr ")"
    comparison: NAME OPERATOR value
    membership: NAME "IN"i "(" value ("," value)* ")"
    likeness: NAME "LIKE"i STRING
    ?value: STRING -> text
          | NUMBER -> number
          | "TRUE"i -> true
          | "FALSE"i -> false
          | "NULL"i -> null
    order: "ORDER"i "BY"i ordering ("," ordering)*
    ordering: NAME DIRECTION?
    limit: "LIMIT"i INT
    DIRECTION: "ASC"i | "DESC"i
    OPERATOR: "!=" | "<=" | ">=" | "=" | "<" | ">"
    NAME: /[A-Za-z][A-Za-z0-9_]*/
    STRING: /'(\\.|[^'\\])*'/
    NUMBER: /-?\d+(\.\d+)?/
    INT: /\d+/
    %import common.WS
    %ignore WS
"""
_PARSER = Lark(GRAMMAR, parser="lalr")
MAX_LIMIT = 50_000


class MalformedQueryError(InvalidInputError):
    """The query is not SOQL this engine reads (Salesforce: MALFORMED_QUERY)."""

    error_code = "MALFORMED_QUERY"


@dataclass(frozen=True)
class Query:
    """A parsed query: what to select from which object, the filter, the order, the limit."""

    object_name: str
    fields: tuple[str, ...]
    where: Any  # a tree of ("and"|"or", [...]) / ("cmp", field, op, value) / ("in", field, [values]) / ("like", field, pattern)
    order: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int | None


class _ToQuery(Transformer):
    def text(self, items):
        return items[0][1:-1].replace("\\'", "'").replace("\\\\", "\\")

    def number(self, items):
        return Decimal(items[0])

    def true(self, _):
        return True

    def false(self, _):
        return False

    def null(self, _):
        return None

    def fields(self, items):
        return tuple(str(i) for i in items)

    def comparison(self, items):
        return ("cmp", str(items[0]), str(items[1]), items[2])

    def membership(self, items):
        return ("in", str(items[0]), list(items[1:]))

    def likeness(self, items):
        return ("like", str(items[0]), items[1][1:-1])

    def disjunction(self, items):
        return ("or", items)

    def conjunction(self, items):
        return ("and", items)

    def where(self, items):
        return items[0]

    def ordering(self, items):
        return (str(items[0]), len(items) > 1 and str(items[1]).upper() == "DESC")

    def order(self, items):
        return tuple(items)

    def limit(self, items):
        return int(items[0])

    def start(self, items):
        fields, name, *rest = items
        where = next((r for r in rest if isinstance(r, tuple) and r and r[0] in ("cmp", "in", "like", "and", "or")), None)
        order = next((r for r in rest if isinstance(r, tuple) and r and isinstance(r[0], tuple)), ())
        limit = next((r for r in rest if isinstance(r, int)), None)
        return Query(str(name), fields, where, order, limit)


def parse(text: str) -> Query:
    """The query, or MalformedQueryError saying where it stopped making sense."""
    try:
        return _ToQuery().transform(_PARSER.parse(text))
    except UnexpectedInput as exc:
        context = " ".join(exc.get_context(text).split())
        raise MalformedQueryError(f"unexpected input at line {exc.line}, column {exc.column}: {context}") from None


@dataclass(frozen=True)
class _Object:
    name: str
    spec: SObjectType
    columns: dict[str, str]  # Salesforce name -> attribute of the table
    computed: set[str]
    indexed: set[str]


def _object(name: str) -> _Object:
    spec = SOBJECTS.get(name)
    if spec is None:
        raise MalformedQueryError(f"sObject type '{name}' is not supported")
    # A public field reads the column of its name, or the one its validation alias names (a
    # Salesforce name for a column of ours: CreditMemo.ReferenceEntityId is order_summary_id).
    columns = {(f.alias or n): attr for n, f in spec.public.model_fields.items()
               if (attr := next((a for a in (f.validation_alias, n) if isinstance(a, str) and a in spec.table.__table__.c),
                                None))}
    # Everything the public model reads may be selected (it is computed from the whole row):
    # computed fields, and fields kept in no column (a Salesforce name this engine has no value for).
    computed = ({(f.alias or n) for n, f in spec.public.model_computed_fields.items()}
                | {(f.alias or n) for n, f in spec.public.model_fields.items()} - set(columns))
    if spec.record_key is not None:  # the Id is read through the table's key (SObjectType.record_key)
        columns["Id"] = "id"
        computed.discard("Id")
    table = spec.table.__table__
    indexed = {sf for sf, attr in columns.items()
               if (c := table.c[attr]).primary_key or c.index or c.unique or c.foreign_keys
               or any(attr in [col.name for col in ix.columns] for ix in table.indexes)}
    return _Object(name, spec, columns, computed, indexed)


def _column(obj: _Object, name: str, use: str):
    if name not in obj.columns:
        raise MalformedQueryError(f"No such column '{name}' on entity '{obj.name}'"
                                  + (" (a computed field: select it, do not filter or sort on it)" if name in obj.computed else ""))
    if name not in obj.indexed:
        raise MalformedQueryError(f"field '{name}' can not be {use}: it is not indexed "
                                  f"(indexed: {', '.join(sorted(obj.indexed))})")
    return getattr(obj.spec.table, obj.columns[name])


_OPERATORS = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", ">": "__gt__", "<=": "__le__", ">=": "__ge__"}


def _stored_id(field: str, value: Any) -> Any:
    """A 15-character Id compared with an Id field, as the 18-character form it is kept in."""
    if field.endswith("Id") and isinstance(value, str) and len(value) == 15 and is_valid_id(value):
        return to_18(value)
    return value


def _keyed(obj: _Object, field: str, value: Any) -> Any:
    """An Id compared with the Id of an object kept under another key (``SObjectType.record_key``),
    as that key; an Id naming no record of the object, as one that matches no row."""
    if field != "Id" or obj.spec.record_key is None or not isinstance(value, str):
        return value
    return obj.spec.record_key(value) or ""


def _condition(obj: _Object, node) -> Any:
    kind = node[0]
    if kind in ("and", "or"):
        parts = [_condition(obj, part) for part in node[1]]
        return and_(*parts) if kind == "and" else or_(*parts)
    column = _column(obj, node[1], "filtered")
    if kind == "cmp":
        _, field, operator, value = node
        if value is None:
            if operator not in ("=", "!="):
                raise MalformedQueryError("null compares only with = or !=")
            return column.is_(None) if operator == "=" else column.is_not(None)
        if operator in ("=", "!="):
            value = _stored_id(field, value)
        return getattr(column, _OPERATORS[operator])(_keyed(obj, field, value))  # a bound parameter
    if kind == "in":
        return column.in_([_keyed(obj, node[1], _stored_id(node[1], value)) for value in node[2]])
    if node[1] == "Id" and obj.spec.record_key is not None:
        raise MalformedQueryError(f"{obj.name}.Id can not be compared with LIKE")
    return column.like(node[2])


def statement(query: Query):
    """The SQLAlchemy select of the query's rows (the whole table row: computed fields need it)."""
    obj = _object(query.object_name)
    for name in query.fields:
        if name not in obj.columns and name not in obj.computed:
            raise MalformedQueryError(f"No such column '{name}' on entity '{query.object_name}'")
    chosen = select(obj.spec.table)
    if obj.spec.visible is not None:
        chosen = chosen.where(obj.spec.visible())
    if query.where is not None:
        chosen = chosen.where(_condition(obj, query.where))
    for name, descending in query.order:
        column = _column(obj, name, "sorted")
        chosen = chosen.order_by(desc(column) if descending else asc(column))
    chosen = chosen.order_by(asc(obj.spec.table.id))  # a stable order for paging
    if query.limit is not None:
        if query.limit > MAX_LIMIT:
            raise MalformedQueryError(f"LIMIT is at most {MAX_LIMIT}")
        chosen = chosen.limit(query.limit)
    return obj, chosen


def run(session: Session, query: Query, *, offset: int, batch: int) -> tuple[int, list[dict[str, Any]]]:
    """The total size and one batch of records (Salesforce names, the selected fields only)."""
    obj, chosen = statement(query)
    total = session.execute(select(func.count()).select_from(chosen.order_by(None).subquery())).scalar_one()
    rows = session.scalars(chosen.offset(offset).limit(min(batch, total - offset))).all() if offset < total else []
    records = []
    for row in rows:
        public = obj.spec.public.model_validate(row, from_attributes=True).model_dump(by_alias=True)
        records.append({name: public[name] for name in query.fields})
    return total, records
