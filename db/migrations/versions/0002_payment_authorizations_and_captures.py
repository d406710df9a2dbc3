"""payment authorizations and captures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:50:17.417039
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import db.types


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('sandbox_gateway_capture',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('charge_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('gateway_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('result_code', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sandbox_gateway_capture', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_gateway_capture_charge_reference'), ['charge_reference'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandbox_gateway_capture_idempotency_key'), ['idempotency_key'], unique=False)

    op.create_table('payment_authorization',
    sa.Column('order_payment_summary_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('payment_gateway_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('payment_method_type', sa.String(length=40), nullable=False),
    sa.Column('gateway_ref_number', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('expiration_date', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('captured_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('pending_capture_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_payment_summary_id'], ['order_payment_summary.id'], ),
    sa.ForeignKeyConstraint(['payment_gateway_id'], ['payment_gateway.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('payment_authorization', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_authorization_order_payment_summary_id'), ['order_payment_summary_id'], unique=False)

    op.create_table('payment_line_invoice',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('payment_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('invoice_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False),
    sa.Column('currency_iso_code', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('background_operation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('applied_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], ),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('payment_line_invoice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_line_invoice_background_operation_id'), ['background_operation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_line_invoice_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_line_invoice_payment_id'), ['payment_id'], unique=False)

    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applied_amount', db.types.MoneyAmount(precision=19, scale=4), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('payment_authorization_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True))
        batch_op.create_index(batch_op.f('ix_payment_payment_authorization_id'), ['payment_authorization_id'], unique=False)
        batch_op.create_foreign_key('fk_payment_payment_authorization_id', 'payment_authorization', ['payment_authorization_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint('fk_payment_payment_authorization_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_payment_payment_authorization_id'))
        batch_op.drop_column('payment_authorization_id')
        batch_op.drop_column('applied_amount')

    with op.batch_alter_table('payment_line_invoice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_line_invoice_payment_id'))
        batch_op.drop_index(batch_op.f('ix_payment_line_invoice_invoice_id'))
        batch_op.drop_index(batch_op.f('ix_payment_line_invoice_background_operation_id'))

    op.drop_table('payment_line_invoice')
    with op.batch_alter_table('payment_authorization', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_authorization_order_payment_summary_id'))

    op.drop_table('payment_authorization')
    with op.batch_alter_table('sandbox_gateway_capture', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_gateway_capture_idempotency_key'))
        batch_op.drop_index(batch_op.f('ix_sandbox_gateway_capture_charge_reference'))

    op.drop_table('sandbox_gateway_capture')
