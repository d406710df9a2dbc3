"""process_exception.background_operation_id indexed: an operation's output lists the
exceptions of all its attempts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 04:00:00
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('process_exception', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_exception_background_operation_id'), ['background_operation_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('process_exception', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_process_exception_background_operation_id'))
