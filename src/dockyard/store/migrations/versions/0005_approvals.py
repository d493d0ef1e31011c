"""Approvals: a per-model approval policy and the append-only log of approval steps.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Off for every existing model: their flows keep working until someone turns it on.
    op.add_column(
        "registered_models",
        sa.Column("require_approval", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "model_approvals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("requester", sa.String(256), nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("package_digest", sa.String(64), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_approvals"),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name="fk_model_approvals_name_model_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_model_approvals_name_version", "model_approvals", ["name", "version"])


def downgrade() -> None:
    op.drop_index("ix_model_approvals_name_version", table_name="model_approvals")
    op.drop_table("model_approvals")
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_column("require_approval")
