"""payment-level refunds

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:53:31
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import db.types


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('payment_gateway', schema=None) as batch_op:
        batch_op.add_column(sa.Column('one_refund_at_a_time', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('refund_unsupported_methods', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))

    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True))
        batch_op.add_column(sa.Column('direct_debit_override_reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='1'))



def downgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_column('revision')
        batch_op.drop_column('direct_debit_override_reason')
        batch_op.drop_column('note')
        batch_op.drop_column('reason')

    with op.batch_alter_table('payment_gateway', schema=None) as batch_op:
        batch_op.drop_column('refund_unsupported_methods')
        batch_op.drop_column('one_refund_at_a_time')

