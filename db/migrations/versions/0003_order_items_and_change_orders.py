"""order items and change orders

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:15:35.918720
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import db.types


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('order_item_summary',
    sa.Column('quantity_canceled', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_fulfilled', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_return_initiated', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_returned', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('order_summary_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('product_code', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('unit_price', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('quantity_ordered', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('total_tax_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_summary_id'], ['order_summary.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('order_item_summary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_item_summary_order_summary_id'), ['order_summary_id'], unique=False)

    op.create_table('change_order',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('order_summary_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('total_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('total_tax_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('credit_memo_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('invoice_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('background_operation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credit_memo_id'], ['credit_memo.id'], ),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], ),
    sa.ForeignKeyConstraint(['order_summary_id'], ['order_summary.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('background_operation_id')
    )
    with op.batch_alter_table('change_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_order_credit_memo_id'), ['credit_memo_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_change_order_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_change_order_order_summary_id'), ['order_summary_id'], unique=False)

    op.create_table('change_order_item',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('change_order_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('order_item_summary_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('quantity', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('tax_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.ForeignKeyConstraint(['change_order_id'], ['change_order.id'], ),
    sa.ForeignKeyConstraint(['order_item_summary_id'], ['order_item_summary.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('change_order_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_order_item_change_order_id'), ['change_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_change_order_item_order_item_summary_id'), ['order_item_summary_id'], unique=False)

    with op.batch_alter_table('credit_memo', schema=None) as batch_op:
        batch_op.add_column(sa.Column('background_operation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        batch_op.create_unique_constraint('uq_credit_memo_background_operation_id', ['background_operation_id'])



def downgrade() -> None:
    with op.batch_alter_table('credit_memo', schema=None) as batch_op:
        batch_op.drop_constraint('uq_credit_memo_background_operation_id', type_='unique')
        batch_op.drop_column('background_operation_id')

    with op.batch_alter_table('change_order_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_order_item_order_item_summary_id'))
        batch_op.drop_index(batch_op.f('ix_change_order_item_change_order_id'))

    op.drop_table('change_order_item')
    with op.batch_alter_table('change_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_order_order_summary_id'))
        batch_op.drop_index(batch_op.f('ix_change_order_invoice_id'))
        batch_op.drop_index(batch_op.f('ix_change_order_credit_memo_id'))

    op.drop_table('change_order')
    with op.batch_alter_table('order_item_summary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_item_summary_order_summary_id'))

    op.drop_table('order_item_summary')
