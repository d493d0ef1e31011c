"""``dockyard serve``: the inference server (Open Inference Protocol V2 and JSON routes).

Imports nothing heavy until it runs, so ``dockyard --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["serve"]


def serve(
    endpoints: list[str] = typer.Argument(
        None, help="Endpoints to serve (default: every endpoint in the store)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (each loads the models)."),
    auth: str = typer.Option(
        None, help="on, off or auto (default; DOCKYARD_AUTH): on unless bound to loopback."
    ),
    max_batch_rows: int = typer.Option(
        None, help="Most rows per predict call (DOCKYARD_SERVE_MAX_BATCH_ROWS, default 256)."
    ),
    max_wait_ms: float = typer.Option(
        None,
        help="How long a busy model may hold a partial batch, in ms (DOCKYARD_SERVE_MAX_WAIT_MS, "
        "default 1; an idle model never waits).",
    ),
    runtime: str = typer.Option(
        None,
        help="auto (DOCKYARD_SERVE_RUNTIME, default): scikit-learn models answered by their "
        "checked ONNX Runtime form when cached; native: always scikit-learn.",
    ),
    prepare: bool = typer.Option(
        False,
        "--prepare",
        help="Fetch and compile the endpoints' models into the local cache, print what each "
        "will run on, and exit (for an image build, or before timing a start).",
    ),
    log_level: str = typer.Option("info", help="Log level: debug, info, warning, error."),
) -> None:
    """Serve endpoints' models over HTTP: V2 (/v2/models/<endpoint>/infer), JSON
    (/endpoints/<endpoint>/predict, MLflow's /invocations), /metrics; follows deploys,
    A/B tests, shadows and rollbacks without a restart."""
    import importlib.util

    from dockyard.core.config import load_settings
    from dockyard.core.errors import ConfigError

    settings = load_settings(
        overrides={
            "auth": auth,
            "serve_max_batch_rows": max_batch_rows,
            "serve_max_wait_ms": max_wait_ms,
            "serve_runtime": runtime,
        }
    )
    if prepare:
        _prepare(settings, list(endpoints) if endpoints else None)
        return
    missing = [m for m in ("orjson", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"dockyard serve needs {', '.join(missing)}: pip install 'dockyard[serving]'"
        )
    from dockyard.server.serve_app import run

    run(
        settings,
        endpoints=list(endpoints) if endpoints else None,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )


def _prepare(settings: Any, endpoints: list[str] | None) -> None:
    from rich.console import Console

    from dockyard.cli._output import print_table
    from dockyard.serving.compiled import prepare

    with Console(stderr=True).status("fetching and compiling the endpoints' models..."):
        rows = prepare(settings, endpoints)
    print_table(
        "what dockyard serve will run",
        ["endpoint", "variant", "model", "runtime", "checked rows", "max difference"],
        [
            (
                r["endpoint"],
                r["variant"],
                r["model"],
                r["runtime"] if r["runtime"] != "native" else f"native ({r.get('reason')})",
                r.get("checked_rows") or "",
                "" if r.get("max_difference") is None else f"{float(r['max_difference']):.1e}",
            )
            for r in rows
        ],
        caption="" if rows else "no endpoint to prepare",
    )
