"""operation_step and composition_run: a composition step's own operation id, leading back to
the run carrying it, with the step's output; the composition a run started with

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 10:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import db.types


revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'operation_step',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('operation_id', sa.String(length=36), nullable=False),
        sa.Column('composition', sa.String(length=63), nullable=False),
        sa.Column('step', sa.String(length=80), nullable=False),
        sa.Column('action', sa.String(length=63), nullable=False),
        sa.Column('output', sa.Text(), nullable=True),
        sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'composition_run',
        sa.Column('operation_id', sa.String(length=36), nullable=False),
        sa.Column('composition', sa.String(length=63), nullable=False),
        sa.Column('definition', sa.Text(), nullable=False),
        sa.Column('created_date', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('operation_id'),
    )
    with op.batch_alter_table('operation_step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operation_step_operation_id'), ['operation_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operation_step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operation_step_operation_id'))
    op.drop_table('operation_step')
    op.drop_table('composition_run')
