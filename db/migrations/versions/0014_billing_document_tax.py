"""credit_memo.total_tax_amount and invoice.total_tax_amount: the tax in total_amount (which
stays the total with tax), so the public TotalAmount can be Salesforce's pretax figure;
backfilled from each document's lines (a document without lines: 0)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 09:00:00
"""
from collections import defaultdict
from decimal import Decimal
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import db.types


revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# (document table, its line table, the line's link to the document)
DOCUMENTS = (('credit_memo', 'credit_memo_line', 'credit_memo_id'), ('invoice', 'invoice_line', 'invoice_id'))
BATCH = 1000


def _backfill(connection, document: str, line: str, link: str) -> None:
    """Sum the lines' tax in Python: SQLite keeps money as decimal text, and SQL's SUM there
    would add binary floats. Only documents whose lines carry tax are written (the rest keep
    the column's default, 0)."""
    money = db.types.MoneyAmount(precision=19, scale=4)
    lines = sa.table(line, sa.column(link, sa.String(18)), sa.column('tax_amount', money))
    documents = sa.table(document, sa.column('id', sa.String(18)), sa.column('total_tax_amount', money))
    taxes: dict[str, Decimal] = defaultdict(Decimal)
    for document_id, tax in connection.execute(sa.select(lines.c[link], lines.c.tax_amount)):
        taxes[document_id] += tax or Decimal(0)
    update = (documents.update().where(documents.c.id == sa.bindparam('document_id'))
              .values(total_tax_amount=sa.bindparam('tax')))
    rows = [{'document_id': d, 'tax': tax} for d, tax in sorted(taxes.items()) if tax != 0]
    for start in range(0, len(rows), BATCH):
        connection.execute(update, rows[start:start + BATCH])


def upgrade() -> None:
    for document, line, link in DOCUMENTS:
        with op.batch_alter_table(document, schema=None) as batch_op:
            batch_op.add_column(sa.Column('total_tax_amount', db.types.MoneyAmount(precision=19, scale=4),
                                          nullable=False, server_default='0'))
        _backfill(op.get_bind(), document, line, link)


def downgrade() -> None:
    for document, _line, _link in DOCUMENTS:
        with op.batch_alter_table(document, schema=None) as batch_op:
            batch_op.drop_column('total_tax_amount')
