"""process_exception.case_id (Salesforce's ProcessException.CaseId, Object Reference v67:
a nillable reference to a Case, Create and Update): existing rows name no case.

Going down refuses, changing nothing, while any process exception names a case: dropping
the column would lose what a person recorded.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-09 09:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('process_exception', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_id', sa.String(length=18), nullable=True))


def downgrade() -> None:
    named = op.get_bind().execute(sa.text('SELECT COUNT(*) FROM process_exception WHERE case_id IS NOT NULL')).scalar()
    if named:
        raise RuntimeError(f"cannot go down to 0015: {named} process_exception row(s) name a CaseId, which 0015 has no "
                           "column for. "
                           "Clear CaseId on them first (PATCH CaseId null) if the cases may be forgotten.")
    with op.batch_alter_table('process_exception', schema=None) as batch_op:
        batch_op.drop_column('case_id')
