"""payment.processing_mode and payment_authorization.processing_mode (Salesforce's
ProcessingMode, External or Salesforce; existing rows are Salesforce); payment_gateway_id
nullable on payment, payment_authorization and payment_gateway_log (an External record may
name no gateway, and its refunds and captures call none); order_payment_summary.method free
text of up to 255 characters (Salesforce's Method, a string; it was a 40-character picklist);
order_payment_summary_id nullable on payment and payment_authorization (a record that no
summary has taken yet: Create Order Payment Summary links it)

Going down refuses, changing nothing, while any row has no gateway, no summary, or a Method
longer than 40 characters: such a row cannot be kept at 0014, and dropping or cutting it would lose
money records.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 09:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

WITH_MODE = ('payment', 'payment_authorization')
GATEWAY_OPTIONAL = ('payment', 'payment_authorization', 'payment_gateway_log')
SUMMARY_OPTIONAL = ('payment', 'payment_authorization')


def upgrade() -> None:
    for table in WITH_MODE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('processing_mode', sa.String(length=40), nullable=False,
                                          server_default='Salesforce'))
    for table in GATEWAY_OPTIONAL:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('payment_gateway_id', existing_type=sa.String(length=18), nullable=True)
    with op.batch_alter_table('order_payment_summary', schema=None) as batch_op:
        batch_op.alter_column('method', existing_type=sa.String(length=40), type_=sa.String(length=255),
                              existing_nullable=False)
    for table in SUMMARY_OPTIONAL:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('order_payment_summary_id', existing_type=sa.String(length=18), nullable=True)


def _refuse_rows_0014_cannot_hold(connection) -> None:
    for table in GATEWAY_OPTIONAL:
        count = connection.execute(sa.text(f"SELECT count(*) FROM {table} WHERE payment_gateway_id IS NULL")).scalar()
        if count:
            raise RuntimeError(f"cannot go down to 0014: {count} {table} row(s) name no payment gateway (External "
                               "records); 0014 requires one. Nothing was changed.")
    for table in SUMMARY_OPTIONAL:
        count = connection.execute(sa.text(f"SELECT count(*) FROM {table} WHERE order_payment_summary_id IS NULL")).scalar()
        if count:
            raise RuntimeError(f"cannot go down to 0014: {count} {table} row(s) belong to no order payment summary yet; "
                               "0014 requires one. Nothing was changed.")
    longer = connection.execute(sa.text("SELECT count(*) FROM order_payment_summary WHERE length(method) > 40")).scalar()
    if longer:
        raise RuntimeError(f"cannot go down to 0014: {longer} order_payment_summary row(s) have a Method longer than "
                           "0014's 40 characters. Nothing was changed.")


def downgrade() -> None:
    _refuse_rows_0014_cannot_hold(op.get_bind())
    for table in SUMMARY_OPTIONAL:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('order_payment_summary_id', existing_type=sa.String(length=18), nullable=False)
    with op.batch_alter_table('order_payment_summary', schema=None) as batch_op:
        batch_op.alter_column('method', existing_type=sa.String(length=255), type_=sa.String(length=40),
                              existing_nullable=False)
    for table in GATEWAY_OPTIONAL:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('payment_gateway_id', existing_type=sa.String(length=18), nullable=False)
    for table in WITH_MODE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('processing_mode')
