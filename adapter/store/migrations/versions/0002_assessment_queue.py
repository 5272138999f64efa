"""The assessment queue: patients whose reports changed and who are to be assessed off the ingest path.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assessment_queue",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("patient_issuer", sa.Text, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("preset", sa.String(100), nullable=False),
        sa.Column("delivery_target", sa.Text),
        sa.Column("queued_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("patient_id", "patient_issuer", name="uq_assessment_queue_patient"),
    )
    op.create_index("ix_assessment_queue_due", "assessment_queue", ["lease_until", "queued_at"])


def downgrade() -> None:
    op.drop_table("assessment_queue")
