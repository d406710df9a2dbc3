"""refund/payment.resolve_attempted_at: the resolver asks about the least recently asked first

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 10:50:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import db.types


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolve_attempted_at', db.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolve_attempted_at', db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_column('resolve_attempted_at')
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_column('resolve_attempted_at')
