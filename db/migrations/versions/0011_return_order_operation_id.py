"""return_order.background_operation_id: a resumed create-return-order run finds the return order it made

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:45:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('return_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('background_operation_id', sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint('uq_return_order_background_operation_id', ['background_operation_id'])


def downgrade() -> None:
    with op.batch_alter_table('return_order', schema=None) as batch_op:
        batch_op.drop_constraint('uq_return_order_background_operation_id', type_='unique')
        batch_op.drop_column('background_operation_id')
