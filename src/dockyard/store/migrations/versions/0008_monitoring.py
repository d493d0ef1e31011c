"""Monitoring: monitors declared on endpoints, their runs, metric time series, events and
webhook deliveries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_window_end", sa.BigInteger, nullable=True),
        sa.Column("next_run", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint"],
            ["endpoints.name"],
            name="fk_monitors_endpoint_endpoints",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint", "name", name="pk_monitors"),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("monitor", sa.String(128), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset_drift", sa.Boolean, nullable=False),
        sa.Column("n_drifted", sa.Integer, nullable=False),
        sa.Column("n_features", sa.Integer, nullable=False),
        sa.Column("n_quality_issues", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_runs"),
    )
    op.create_index(
        "ix_monitor_runs_endpoint_window",
        "monitor_runs",
        ["endpoint", "monitor", "window_start"],
    )
    op.create_table(
        "monitor_metrics",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("monitor", sa.String(128), nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["monitor_runs.id"],
            name="fk_monitor_metrics_run_id_monitor_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_metrics"),
    )
    op.create_index(
        "ix_monitor_metrics_series",
        "monitor_metrics",
        ["endpoint", "metric", "feature", "window_start"],
    )
    op.create_index("ix_monitor_metrics_run", "monitor_metrics", ["run_id"])
    op.create_table(
        "monitoring_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("monitor", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitoring_events"),
    )
    op.create_index("ix_monitoring_events_endpoint_id", "monitoring_events", ["endpoint", "id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("event_id", _BIG_ID, nullable=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("next_attempt", sa.BigInteger, nullable=True),
        sa.Column("delivered", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["monitoring_events.id"],
            name="fk_alert_deliveries_event_id_monitoring_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index(
        "ix_alert_deliveries_status_next", "alert_deliveries", ["status", "next_attempt"]
    )


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_status_next", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_monitoring_events_endpoint_id", table_name="monitoring_events")
    op.drop_table("monitoring_events")
    op.drop_index("ix_monitor_metrics_run", table_name="monitor_metrics")
    op.drop_index("ix_monitor_metrics_series", table_name="monitor_metrics")
    op.drop_table("monitor_metrics")
    op.drop_index("ix_monitor_runs_endpoint_window", table_name="monitor_runs")
    op.drop_table("monitor_runs")
    op.drop_table("monitors")
