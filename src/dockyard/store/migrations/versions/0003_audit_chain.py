"""Audit hash chain: every audit event stores the previous event's hash and its own.

Existing events are chained in id order (the first one follows the genesis hash), in pages, so
a large log is never loaded whole.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dockyard.core.audit_chain import GENESIS_HASH, event_hash

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_PAGE = 5000


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(64), nullable=True))
    events = sa.table(
        "audit_events",
        sa.column("event_id", sa.BigInteger),
        sa.column("time", sa.BigInteger),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("resource_type", sa.String),
        sa.column("resource_id", sa.String),
        sa.column("details", sa.JSON),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    conn = op.get_bind()
    update = (
        events.update()
        .where(events.c.event_id == sa.bindparam("b_id"))
        .values(prev_hash=sa.bindparam("b_prev"), hash=sa.bindparam("b_hash"))
    )
    prev, after = GENESIS_HASH, None
    while True:
        q = sa.select(events).order_by(events.c.event_id).limit(_PAGE)
        if after is not None:
            q = q.where(events.c.event_id > after)
        rows = conn.execute(q).fetchall()
        if not rows:
            break
        params = []
        for r in rows:
            digest = event_hash(
                int(r.event_id),
                int(r.time),
                r.actor,
                r.action,
                r.resource_type,
                r.resource_id,
                dict(r.details or {}),
                prev,
            )
            params.append({"b_id": r.event_id, "b_prev": prev, "b_hash": digest})
            prev = digest
        conn.execute(update, params)
        after = rows[-1].event_id
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
