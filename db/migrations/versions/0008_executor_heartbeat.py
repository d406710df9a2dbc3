"""executor heartbeats and claims (warm executor liveness, one claim per Scheduled state)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 07:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import db.types


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('executor_heartbeat',
    sa.Column('executor_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('work_pool', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('started_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('beat_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('run_ids', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('executor_id')
    )
    op.create_table('executor_claim',
    sa.Column('flow_run_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('scheduled_state_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('executor_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('claimed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('flow_run_id', 'scheduled_state_id')
    )


def downgrade() -> None:
    op.drop_table('executor_claim')
    op.drop_table('executor_heartbeat')
