"""Reconciliation against the gateways: reconciliation_finding (one row per difference,
kept across runs by its fingerprint), reconciliation_match (a run's matched store records,
emptied when the run ends), and the indexes reconcile-gateway reads by: the gateway's id on
refunds, payments and authorizations, payments by creation time, and the sandbox gateway's
books by creation time and reference.

Going down drops the two tables: the findings are a report the next run makes again.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 16:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from db.types import MoneyAmount, UTCDateTime


revision: str = '0018'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'reconciliation_finding',
        sa.Column('difference', sa.String(length=40), nullable=False),
        sa.Column('record_kind', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('resolution', sa.String(length=40), nullable=True),
        sa.Column('gateway_account', sa.String(length=255), nullable=False),
        sa.Column('payment_gateway_id', sa.String(length=18), nullable=True),
        sa.Column('gateway_reference', sa.String(length=255), nullable=True),
        sa.Column('gateway_status', sa.String(length=40), nullable=True),
        sa.Column('gateway_amount', MoneyAmount(), nullable=True),
        sa.Column('gateway_currency', sa.String(length=3), nullable=True),
        sa.Column('store_object', sa.String(length=40), nullable=True),
        sa.Column('store_record_id', sa.String(length=18), nullable=True),
        sa.Column('store_status', sa.String(length=40), nullable=True),
        sa.Column('store_amount', MoneyAmount(), nullable=True),
        sa.Column('store_currency', sa.String(length=3), nullable=True),
        sa.Column('order_summary_id', sa.String(length=18), nullable=True),
        sa.Column('payment_id', sa.String(length=18), nullable=True),
        sa.Column('recorded_refund_id', sa.String(length=18), nullable=True),
        sa.Column('detail', sa.String(length=1000), nullable=False),
        sa.Column('occurred_date', UTCDateTime(), nullable=False),
        sa.Column('first_seen_date', UTCDateTime(), nullable=False),
        sa.Column('last_seen_date', UTCDateTime(), nullable=False),
        sa.Column('resolved_date', UTCDateTime(), nullable=True),
        sa.Column('first_seen_run_id', sa.String(length=36), nullable=False),
        sa.Column('last_seen_run_id', sa.String(length=36), nullable=False),
        sa.Column('resolved_run_id', sa.String(length=36), nullable=True),
        sa.Column('times_opened', sa.Integer(), nullable=False),
        sa.Column('id', sa.String(length=18), nullable=False),
        sa.Column('fingerprint', sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('fingerprint', name='uq_reconciliation_finding_fingerprint'),
    )
    with op.batch_alter_table('reconciliation_finding', schema=None) as batch_op:
        for column in ('status', 'gateway_account', 'payment_gateway_id', 'gateway_reference', 'store_record_id',
                       'order_summary_id', 'last_seen_run_id'):
            batch_op.create_index(batch_op.f(f'ix_reconciliation_finding_{column}'), [column], unique=False)
        batch_op.create_index('ix_reconciliation_finding_window', ['gateway_account', 'status', 'occurred_date'],
                              unique=False)
    op.create_table(
        'reconciliation_match',
        sa.Column('run_id', sa.String(length=36), nullable=False),
        sa.Column('record_id', sa.String(length=18), nullable=False),
        sa.Column('gateway_reference', sa.String(length=255), nullable=False),
        sa.Column('noted_date', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('run_id', 'record_id'),
    )
    op.create_index('ix_refund_gateway_ref_number', 'refund', ['gateway_ref_number'], unique=False)
    op.create_index('ix_payment_gateway_ref_number', 'payment', ['gateway_ref_number'], unique=False)
    op.create_index('ix_payment_created', 'payment', ['created_date', 'id'], unique=False)
    op.create_index('ix_payment_authorization_gateway_ref_number', 'payment_authorization', ['gateway_ref_number'],
                    unique=False)
    # The sandbox gateway's books (made here by 0001 and 0002; gateways.sandbox_ledger): the
    # sandbox makes these itself where it runs first, hence if_not_exists.
    for books in ('sandbox_gateway_refund', 'sandbox_gateway_capture'):
        op.create_index(f'ix_{books}_created', books, ['created_date', 'id'], unique=False, if_not_exists=True)
        op.create_index(f'ix_{books}_reference', books, ['gateway_reference'], unique=False, if_not_exists=True)


def downgrade() -> None:
    for books in ('sandbox_gateway_refund', 'sandbox_gateway_capture'):
        op.drop_index(f'ix_{books}_reference', table_name=books, if_exists=True)
        op.drop_index(f'ix_{books}_created', table_name=books, if_exists=True)
    op.drop_index('ix_payment_authorization_gateway_ref_number', table_name='payment_authorization')
    op.drop_index('ix_payment_created', table_name='payment')
    op.drop_index('ix_payment_gateway_ref_number', table_name='payment')
    op.drop_index('ix_refund_gateway_ref_number', table_name='refund')
    op.drop_table('reconciliation_match')
    op.drop_table('reconciliation_finding')
