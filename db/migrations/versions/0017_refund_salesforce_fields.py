"""refund.processing_mode, refund.payment_gateway_id and refund.sf_result_code (Salesforce's
Refund ProcessingMode, PaymentGatewayId and SfResultCode, Field Reference v67): the refunded
payment's mode and gateway, copied when a refund is made, and the Salesforce result code of
the gateway's answer, written with it.

Existing refunds are filled in: mode and gateway from their payment (neither changes once a
payment is made), the result code from the refund's own gateway log (the row whose
SfRefNumber is the refund's idempotency key; a reversal's log row is not it).

Going down drops the three columns: each can be read again from the payment and the gateway
log, so nothing is lost.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10 09:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0017'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('processing_mode', sa.String(length=40), nullable=False,
                                      server_default='Salesforce'))
        batch_op.add_column(sa.Column('payment_gateway_id', sa.String(length=18), nullable=True))
        batch_op.add_column(sa.Column('sf_result_code', sa.String(length=40), nullable=True))
    op.execute(sa.text(
        "UPDATE refund SET "
        "processing_mode = COALESCE((SELECT payment.processing_mode FROM payment WHERE payment.id = refund.payment_id), "
        "'Salesforce'), "
        "payment_gateway_id = (SELECT payment.payment_gateway_id FROM payment WHERE payment.id = refund.payment_id)"))
    op.execute(sa.text(
        "UPDATE refund SET sf_result_code = (SELECT max(gl.sf_result_code) FROM payment_gateway_log gl "
        "WHERE gl.sf_ref_number = refund.idempotency_key AND gl.reference_entity_id = refund.id)"))


def downgrade() -> None:
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_column('sf_result_code')
        batch_op.drop_column('payment_gateway_id')
        batch_op.drop_column('processing_mode')
