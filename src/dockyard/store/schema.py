"""Table definitions of the metadata store (SQLAlchemy Core).

The tables are the store's private business: rows become :mod:`dockyard.core.entities`
objects before they leave ``store/``. Every change here needs an Alembic migration in
``store/migrations/versions``; a test checks that the migrated database equals this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("lifecycle_stage", String(16), nullable=False),
    Column("artifact_location", String(1024), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column(
        "experiment_id",
        BigId,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column(
        "experiment_id",
        BigId,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("user", String(256), nullable=False),
    Column("parent_run_id", String(32), nullable=True, index=True),
    Column("lifecycle_stage", String(16), nullable=False),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# Full metric history. NaN is kept as is_nan=True with value NULL because SQLite turns a NaN
# REAL into NULL on its own.
metrics = Table(
    "metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=True),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    # Covers the history read (filter, order and every column it returns) so it never touches
    # the table or sorts: the hottest read of the tracking API.
    Index("ix_metrics_history", "run_id", "key", "step", "timestamp", "id", "value", "is_nan"),
)

# The latest point per (run, key): the largest (step, timestamp), as MLflow defines it.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=True),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
)

dataset_inputs = Table(
    "dataset_inputs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("digest", String(128), nullable=False),
    Column("context", String(64), nullable=False),
    Column("num_rows", BigInteger, nullable=True),
    Column("schema", JSON, nullable=True),
    Column("source", String(1024), nullable=True),
    UniqueConstraint("run_id", "name", "digest", "context"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_time", BigInteger, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", BigId, primary_key=True, autoincrement=True),
    Column("time", BigInteger, nullable=False, index=True),
    Column("actor", String(256), nullable=False, index=True),
    Column("action", String(128), nullable=False, index=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(256), nullable=False),
    Column("details", JSON, nullable=False),
    # The hash chain (migration 0003): sha256 of the event's canonical form and the previous
    # event's hash; see dockyard.governance.audit.
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# -- model registry (migration 0002) ----------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=False),
    Column("owner", String(256), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    # The approval policy (migration 0005): production needs a four-eyes approval.
    Column("require_approval", Boolean, nullable=False, default=False, server_default=false()),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column(
        "name",
        String(256),
        ForeignKey("registered_models.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# Versions are numbered per model; the composite primary key is what makes two concurrent
# registrations of the same model end with distinct numbers (the loser's insert fails and the
# store retries it).
model_versions = Table(
    "model_versions",
    metadata,
    Column(
        "name",
        String(256),
        ForeignKey("registered_models.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("source", String(1024), nullable=False),
    Column("run_id", String(32), nullable=True, index=True),
    Column("package_digest", String(64), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("task", String(32), nullable=True),
    Column("signature", JSON, nullable=False),
    Column("trusted_pickle", Boolean, nullable=False),
    Column("datasets", JSON, nullable=False),
    Column("code", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("replacement_version", Integer, nullable=True),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
)

model_version_files = Table(
    "model_version_files",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
)

model_alias_events = Table(
    "model_alias_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("time", BigInteger, nullable=False),
    Index("ix_model_alias_events_name_alias", "name", "alias"),
)

model_status_events = Table(
    "model_status_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_model_status_events_name_version", "name", "version"),
)

model_validations = Table(
    "model_validations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("against_version", Integer, nullable=True),
    Column("passed", Boolean, nullable=False),
    Column("checks", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("data_digest", String(64), nullable=False),
    Column("num_rows", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("time", BigInteger, nullable=False),
    Index("ix_model_validations_name_version", "name", "version"),
)

# -- approvals (migration 0005) -------------------------------------------------------------

# Append-only: requests, approvals and rejections of a version, each with the package digest it
# was made for. Whether a version is approved is read from these rows (the latest decision).
model_approvals = Table(
    "model_approvals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("requester", String(256), nullable=True),
    Column("comment", Text, nullable=False),
    Column("package_digest", String(64), nullable=False),
    Column("time", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
    Index("ix_model_approvals_name_version", "name", "version"),
)

# -- identities, tokens and role grants (migration 0004) -------------------------------------

users = Table(
    "users",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("display", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created", BigInteger, nullable=False),
)

# Only the sha256 of a token is stored; token_id is its public handle (list, revoke).
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column(
        "user_name",
        String(256),
        ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=True),
    Column("revoked", BigInteger, nullable=True),
    Column("last_used", BigInteger, nullable=True),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column(
        "principal",
        String(256),
        ForeignKey("users.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("role", String(32), primary_key=True),
    Column("resource_type", String(32), primary_key=True),
    Column("resource_id", String(256), primary_key=True),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
)

# -- redaction rules per endpoint (migration 0006) -------------------------------------------

# What the prediction log drops, hashes or masks in an endpoint's logged inputs. ``rules`` is a
# JSON list of {"column", "action", "keep"}; ``version`` counts the changes (1 on creation).
redaction_policies = Table(
    "redaction_policies",
    metadata,
    Column("endpoint", String(256), primary_key=True),
    Column("rules", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

# -- serving endpoints, their policy history, rollout decisions, leases (migration 0007) -----

# An endpoint is a stable name over the current version of its traffic policy; every change of
# the policy is a new row of endpoint_policies (history, rollback to the last good one).
endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_good_version", Integer, nullable=True),
)

endpoint_policies = Table(
    "endpoint_policies",
    metadata,
    Column(
        "endpoint",
        String(128),
        ForeignKey("endpoints.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("policy", JSON, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("reason", Text, nullable=False),
)

# Every act on a policy (deploy, canary step, promote, rollback, hold) with its evidence.
endpoint_decisions = Table(
    "endpoint_decisions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "endpoint",
        String(128),
        ForeignKey("endpoints.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("evidence", JSON, nullable=False),
    Index("ix_endpoint_decisions_endpoint_id", "endpoint", "id"),
)

# Leases for background loops that must run in one replica at a time (the canary controller).
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires", BigInteger, nullable=False),
)

# -- monitoring: monitors, their runs, metric time series, events, alert deliveries (0008) ----

# A monitor declared on an endpoint: what to compare, against what, how often, whom to tell.
# Runs, metrics and events have no foreign key to the endpoint: their history outlives it.
monitors = Table(
    "monitors",
    metadata,
    Column(
        "endpoint",
        String(128),
        ForeignKey("endpoints.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    # the end of the last window the scheduler ran (epoch ms); the next window starts there
    Column("last_window_end", BigInteger, nullable=True),
    Column("next_run", BigInteger, nullable=True),
)

# One evaluation of one window: the headline numbers as columns, the whole result as JSON.
monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint", String(128), nullable=False),
    Column("monitor", String(128), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("dataset_drift", Boolean, nullable=False),
    Column("n_drifted", Integer, nullable=False),
    Column("n_features", Integer, nullable=False),
    Column("n_quality_issues", Integer, nullable=False),
    Column("result", JSON, nullable=False),
    Index("ix_monitor_runs_endpoint_window", "endpoint", "monitor", "window_start"),
)

# Time series: one value per (run, variant, feature, metric); feature "" is the whole window,
# variant "" all live traffic.
monitor_metrics = Table(
    "monitor_metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "run_id",
        String(36),
        ForeignKey("monitor_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("endpoint", String(128), nullable=False),
    Column("monitor", String(128), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("variant", String(128), nullable=False),
    Column("feature", String(256), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=True),
    Index("ix_monitor_metrics_series", "endpoint", "metric", "feature", "window_start"),
    Index("ix_monitor_metrics_run", "run_id"),
)

# Events other parts subscribe to (drift detected, performance below threshold); ids increase,
# so a subscriber keeps the last id it handled.
monitoring_events = Table(
    "monitoring_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("time", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("monitor", String(128), nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("payload", JSON, nullable=False),
    Index("ix_monitoring_events_endpoint_id", "endpoint", "id"),
)

# One webhook delivery of one event: pending until delivered, dead after the last retry
# (kept, and replayable), never deleted by the delivery loop.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "event_id",
        BigId,
        ForeignKey("monitoring_events.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("endpoint", String(128), nullable=False),
    Column("target", String(2048), nullable=False),
    Column("options", JSON, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("next_attempt", BigInteger, nullable=True),
    Column("delivered", BigInteger, nullable=True),
    Index("ix_alert_deliveries_status_next", "status", "next_attempt"),
)
