"""The settings table and its loader.

One table (:data:`SETTINGS`) names every setting with its type, default, environment variable
and help. Values come from, in order: explicit overrides (CLI flags), the environment
(``DOCKYARD_*``), a ``dockyard.toml`` file (in the working folder, or the one named by
``DOCKYARD_CONFIG``), then the default. :class:`Settings` records where each value came from.
Settings are read once and passed down; the object is frozen.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.core.errors import InvalidInput


@dataclass(frozen=True)
class Setting:
    name: str
    type: Callable[[str], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "DOCKYARD_" + self.name.upper()


def _bool(value: str) -> bool:
    v = str(value).strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


_bool.expects = "a boolean (true/false, on/off, yes/no, 1/0)"  # type: ignore[attr-defined]


def _serve_runtime(value: str) -> str:
    v = str(value).strip().lower()
    if v not in ("auto", "native"):
        raise ValueError(f"not 'auto' or 'native': {value!r}")
    return v


_serve_runtime.expects = "'auto' or 'native'"  # type: ignore[attr-defined]


SETTINGS: tuple[Setting, ...] = (
    Setting("home", str, ".dockyard", "Folder for the SQLite file and local artifacts."),
    Setting(
        "db_url",
        str,
        None,
        "SQLAlchemy URL of the metadata store; default: a SQLite file in the home folder. "
        "For PostgreSQL: postgresql+psycopg://user@host:5432/db",
    ),
    Setting(
        "artifact_root",
        str,
        None,
        "Root URI of the artifact store (a folder, or s3://, gs://, memory://... via fsspec); "
        "default: <home>/artifacts.",
    ),
    Setting(
        "tracking_uri",
        str,
        None,
        "http(s)://host:port of a Dockyard server for the SDK's remote mode; unset means local.",
    ),
    Setting("tracking_token", str, None, "API token sent to the server in remote mode."),
    Setting(
        "user",
        str,
        None,
        "Who local mode (SDK, CLI) acts as; default: the OS user. Once the store has users it "
        "must be one of them, and gets that user's roles.",
    ),
    Setting(
        "auth",
        str,
        "auto",
        "Server authentication: 'on' (every route but /healthz and the API docs needs a "
        "bearer token), 'off', or 'auto' = on unless the server binds to a loopback address.",
    ),
    Setting(
        "max_body_bytes",
        int,
        8 * 1024 * 1024,
        "Largest JSON request body the server accepts, in bytes.",
    ),
    Setting(
        "max_artifact_bytes",
        int,
        50 * 1024**3,
        "Largest artifact upload the server accepts, in bytes.",
    ),
    Setting(
        "metric_flush_seconds",
        float,
        0.5,
        "How often the SDK's background thread flushes buffered metrics.",
    ),
    Setting("metric_batch_size", int, 1000, "Largest number of metric points in one flush."),
    Setting("sqlite_busy_timeout", float, 60.0, "Seconds a SQLite writer waits for the lock."),
    Setting(
        "audit_retention_days",
        int,
        None,
        "Days audit events are kept before `dockyard audit purge` deletes them; unset keeps "
        "them forever. At least 183 (six months, the EU AI Act minimum).",
    ),
    Setting(
        "allowed_hosts",
        str,
        None,
        "Comma-separated Host header names the server answers to ('*' = any; '.example.com' = "
        "it and its subdomains); default: the address it is bound to plus localhost, "
        "127.0.0.1 and ::1. Other hosts get 403 (a guard against DNS rebinding).",
    ),
    Setting(
        "encryption_key",
        str,
        None,
        "Base64 256-bit key(s) to encrypt artifacts at rest (AES-256-GCM); comma-separated, "
        "the first encrypts and all decrypt (rotation). Unset: stored as plaintext. Never "
        "logged. Needs the 'encryption' extra.",
    ),
    Setting(
        "key_provider",
        str,
        None,
        "'package.module:factory' returning a KeyProvider (a KMS or vault client) to use "
        "instead of DOCKYARD_ENCRYPTION_KEY.",
    ),
    Setting(
        "trusted_modules",
        str,
        "sklearn,numpy,scipy,pandas,skops,xgboost,lightgbm",
        "Module roots whose skops types a server deserialises when a package records them "
        "(its author's word is not enough there); '*' honours every recorded type.",
    ),
    Setting(
        "canary_interval",
        float,
        5.0,
        "Seconds between the canary controller's passes in `dockyard server`; 0 turns it off "
        "there (run `dockyard controller` on its own instead).",
    ),
    Setting(
        "monitor_interval",
        float,
        30.0,
        "Seconds between the monitor scheduler's passes in `dockyard server` (it runs declared "
        "monitors on their windows and delivers webhook alerts); 0 turns it off.",
    ),
    Setting(
        "model_extra_columns",
        str,
        "drop",
        "What a loaded model's predict does with input columns its signature does not name: "
        "'drop' them with a warning, or 'reject' the input.",
    ),
    Setting(
        "redaction_key",
        str,
        None,
        "Secret key (at least 32 characters) of the keyed hash (HMAC-SHA256) that redaction "
        "'hash' rules apply to logged inputs; the same on every replica. Unset: hash rules "
        "fail rather than hash without a secret.",
    ),
    Setting(
        "predlog_buffer_records",
        int,
        100_000,
        "Most prediction log records a serving process holds in memory before writing them; "
        "past it, records are dropped and counted (never blocking a request).",
    ),
    Setting(
        "predlog_flush_seconds",
        float,
        1.0,
        "How often the prediction log writer flushes its buffer to Parquet files.",
    ),
    Setting(
        "serve_max_batch_rows",
        int,
        2048,
        "dockyard serve: most rows the micro-batcher puts in one predict call.",
    ),
    Setting(
        "serve_max_wait_ms",
        float,
        1.0,
        "dockyard serve: how long a busy model's micro-batcher may hold a partial batch to "
        "fill it, in ms (0: never wait); past it, it holds only while the server is still "
        "reading requests (at most its last batch's duration, 20 ms); an idle model never "
        "waits.",
    ),
    Setting(
        "serve_threads",
        int,
        4,
        "dockyard serve: inference threads (predict calls run off the event loop).",
    ),
    Setting(
        "serve_access_log",
        _bool,
        False,
        "dockyard serve: write uvicorn's access line for every request (off by default: the "
        "prediction log already records every request, with more).",
    ),
    Setting(
        "serve_runtime",
        _serve_runtime,
        "auto",
        "dockyard serve: 'auto' answers a scikit-learn model from its compiled ONNX Runtime form "
        "when one is cached and checked (compiling it in the background when skl2onnx and "
        "onnxruntime are installed); 'native' always runs scikit-learn.",
    ),
    Setting(
        "serve_model_threads",
        int,
        1,
        "dockyard serve: threads one predict call may use inside the model (OpenMP, BLAS); "
        "concurrency comes from the inference threads and micro-batching, so 1 avoids "
        "oversubscribing the cores.",
    ),
    Setting(
        "serve_poll_seconds",
        float,
        0.5,
        "dockyard serve: how often the server checks the store for new endpoint policies.",
    ),
    Setting(
        "serve_shadow_timeout",
        float,
        5.0,
        "dockyard serve: seconds a shadow variant may take per request before it is counted "
        "as timed out (the caller never waits for shadows).",
    ),
    Setting(
        "serve_log_predictions",
        _bool,
        True,
        "dockyard serve: write every request and shadow call to the prediction log.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


#: Settings whose values are secrets: never shown by :class:`Settings`' repr (nor logged).
SECRET_SETTINGS = frozenset({"tracking_token", "encryption_key", "redaction_key"})


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved settings; ``sources`` says where each value came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {
            k: ("***" if k in SECRET_SETTINGS and v is not None else v)
            for k, v in self.values.items()
        }
        return f"Settings(values={shown!r}, sources={dict(self.sources)!r})"

    def with_overrides(self, **values: Any) -> Settings:
        """These settings with some values replaced (their source recorded as overrides)."""
        return Settings(
            values={**self.values, **values},
            sources={**self.sources, **dict.fromkeys(values, "override")},
        )

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def home_path(self) -> Path:
        return Path(self.values["home"]).expanduser()

    @property
    def resolved_db_url(self) -> str:
        url = self.values.get("db_url")
        if url:
            return str(url)
        return f"sqlite:///{(self.home_path / 'dockyard.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> str:
        root = self.values.get("artifact_root")
        if root:
            return str(root)
        return str((self.home_path / "artifacts").resolve())


def _read_toml(environ: Mapping[str, str]) -> dict[str, Any]:
    path = Path(environ.get("DOCKYARD_CONFIG", "dockyard.toml"))
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"config file {path} is not valid TOML: {exc}") from None
    table = data.get("dockyard", data)
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        raise InvalidInput(
            f"config file {path} has unknown settings {unknown}; known: {sorted(_BY_NAME)}"
        )
    return dict(table)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting: overrides, then environment, then dockyard.toml, then default."""
    env = os.environ if environ is None else environ
    file_values = _read_toml(env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if overrides and overrides.get(s.name) is not None:
            raw, src = overrides[s.name], "override"
        elif env.get(s.env) not in (None, ""):
            raw, src = env[s.env], "env"
        elif s.name in file_values:
            raw, src = file_values[s.name], "file"
        else:
            values[s.name], sources[s.name] = s.default, "default"
            continue
        try:
            values[s.name] = s.type(raw) if isinstance(raw, str) else raw
        except (TypeError, ValueError):
            kind = getattr(s.type, "expects", s.type.__name__)
            raise InvalidInput(f"setting {s.name} ({s.env}) must be {kind}, got {raw!r}") from None
        sources[s.name] = src
    if values.get("audit_retention_days") is not None:
        from dockyard.core.audit_chain import check_retention_days

        values["audit_retention_days"] = check_retention_days(values["audit_retention_days"])
    return Settings(values=values, sources=sources)
