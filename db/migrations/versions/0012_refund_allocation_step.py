"""refund.allocation_step: the step of seed 000 that chose each refund (Sequence, CreditMemo, ExcessFunds)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allocation_step', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_column('allocation_step')
