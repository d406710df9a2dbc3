"""refund events outbox and webhook deliveries

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 05:04:07
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import db.types


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('refund_event',
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('entity', sa.Text(), nullable=False),
    sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('position'),
    sa.UniqueConstraint('event_id', name='uq_refund_event_event_id')
    )
    with op.batch_alter_table('refund_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_event_refund_id'), ['refund_id'], unique=False)

    op.create_table('webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('delivered_date', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['refund_event.event_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription', 'event_id', name='uq_webhook_delivery_subscription_event')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_subscription'), ['subscription'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_subscription'))
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_status'))

    op.drop_table('webhook_delivery')
    with op.batch_alter_table('refund_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_event_refund_id'))

    op.drop_table('refund_event')
