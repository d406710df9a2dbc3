"""returns, fee invoices, idempotent requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:18:46
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import db.types


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# 0003 left change_order's unique constraint unnamed: PostgreSQL named it, SQLite did not,
# so on SQLite the batch copy names it by this convention in order to drop it.
_SQLITE_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _single_unique_name() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "change_order_background_operation_id_key"
    return "uq_change_order_background_operation_id"


def _change_order_batch():
    return op.batch_alter_table('change_order', schema=None, naming_convention=_SQLITE_NAMING)


def upgrade() -> None:
    op.create_table('idempotent_request',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.Text(), nullable=False),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('return_order',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('order_summary_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_summary_id'], ['order_summary.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('return_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_return_order_order_summary_id'), ['order_summary_id'], unique=False)

    op.create_table('return_order_line_item',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('return_order_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('order_item_summary_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('quantity_expected', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_received', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_returned', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_rejected', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('quantity_canceled', db.types.Quantity(precision=19, scale=4), nullable=False),
    sa.Column('reason_for_return', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('reason_for_rejection', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('fee_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('fee_tax_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('change_order_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('split_from_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
    sa.Column('processed_date', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('background_operation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['change_order_id'], ['change_order.id'], ),
    sa.ForeignKeyConstraint(['order_item_summary_id'], ['order_item_summary.id'], ),
    sa.ForeignKeyConstraint(['return_order_id'], ['return_order.id'], ),
    sa.ForeignKeyConstraint(['split_from_id'], ['return_order_line_item.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('return_order_line_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_return_order_line_item_background_operation_id'), ['background_operation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_order_line_item_change_order_id'), ['change_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_order_line_item_order_item_summary_id'), ['order_item_summary_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_order_line_item_return_order_id'), ['return_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_order_line_item_split_from_id'), ['split_from_id'], unique=False)

    # A return-to-refund operation makes a Return and a Fee change order: one per type, not one in all.
    with _change_order_batch() as batch_op:
        batch_op.drop_constraint(_single_unique_name(), type_='unique')
        batch_op.create_unique_constraint('uq_change_order_operation_type', ['background_operation_id', 'type'])

    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('background_operation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        batch_op.create_unique_constraint('uq_invoice_background_operation_id', ['background_operation_id'])



def downgrade() -> None:
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_constraint('uq_invoice_background_operation_id', type_='unique')
        batch_op.drop_column('background_operation_id')

    with _change_order_batch() as batch_op:
        batch_op.drop_constraint('uq_change_order_operation_type', type_='unique')
        batch_op.create_unique_constraint(_single_unique_name(), ['background_operation_id'])

    with op.batch_alter_table('return_order_line_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_return_order_line_item_split_from_id'))
        batch_op.drop_index(batch_op.f('ix_return_order_line_item_return_order_id'))
        batch_op.drop_index(batch_op.f('ix_return_order_line_item_order_item_summary_id'))
        batch_op.drop_index(batch_op.f('ix_return_order_line_item_change_order_id'))
        batch_op.drop_index(batch_op.f('ix_return_order_line_item_background_operation_id'))

    op.drop_table('return_order_line_item')
    with op.batch_alter_table('return_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_return_order_order_summary_id'))

    op.drop_table('return_order')
    op.drop_table('idempotent_request')
