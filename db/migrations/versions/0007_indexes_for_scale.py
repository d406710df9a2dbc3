"""indexes for scale

Reads that scanned a whole table at 1M order summaries (bench/store_scale.py):
Ensure Refunds reading back its credit memo applications by operation, the webhook
enqueue's events since a time, resolve-captures' Draft captures.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 07:30:00
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('credit_memo_inv_application', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_memo_inv_application_background_operation_id'), ['background_operation_id'], unique=False)

    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.create_index('ix_payment_status_created', ['status', 'created_date'], unique=False)

    with op.batch_alter_table('refund_event', schema=None) as batch_op:
        batch_op.create_index('ix_refund_event_created_date', ['created_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refund_event', schema=None) as batch_op:
        batch_op.drop_index('ix_refund_event_created_date')

    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_status_created')

    with op.batch_alter_table('credit_memo_inv_application', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_memo_inv_application_background_operation_id'))
