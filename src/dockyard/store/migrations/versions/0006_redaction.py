"""Redaction rules per endpoint: what the prediction log drops, hashes or masks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redaction_policies",
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name="pk_redaction_policies"),
    )


def downgrade() -> None:
    op.drop_table("redaction_policies")
