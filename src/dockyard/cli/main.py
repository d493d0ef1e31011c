"""The `dockyard` entry point: subcommands and the one place that turns errors into exits."""

from __future__ import annotations

import sys

import typer

from dockyard.cli import (
    alerts,
    artifacts,
    audit,
    db,
    endpoints,
    experiments,
    identity,
    models,
    monitor,
    redaction,
    runs,
    serve,
    serving_logs,
)

app = typer.Typer(
    name="dockyard",
    help="Dockyard: track runs, register, deploy and watch models — one tool, laptop to cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.add_typer(identity.users, name="users")
app.add_typer(identity.tokens, name="tokens")
app.add_typer(identity.grants, name="grants")
app.command("whoami")(identity.whoami)
app.add_typer(audit.app, name="audit")
app.add_typer(redaction.app, name="redaction")
app.command("deploy")(endpoints.deploy)
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(serving_logs.logs, name="logs")
app.add_typer(serving_logs.labels, name="labels")
app.add_typer(monitor.app, name="monitor")
app.add_typer(alerts.app, name="alerts")
app.command("serve")(serve.serve)


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
    auth: str = typer.Option(
        None, help="on, off or auto (default; DOCKYARD_AUTH): on unless bound to loopback."
    ),
) -> None:
    """Run the REST API server (tracking API under /api/v1, /healthz)."""
    from dockyard.core.config import load_settings
    from dockyard.server.app import run

    run(load_settings(overrides={"auth": auth}), host=host, port=port, workers=workers)


@app.command()
def demo(
    rows: int = typer.Option(20_000, help="Rows of synthetic transactions."),
    seed: int = typer.Option(0, help="Random seed (the data is deterministic per seed)."),
    experiment: str = typer.Option("fraud-demo", help="Experiment to track the runs in."),
    auth: bool = typer.Option(
        False,
        "--auth",
        help="Run it as a team through a server with auth on: users ana (editor+approver) and "
        "risk-officer (approver) with tokens, training over HTTP as ana, a four-eyes approval.",
    ),
) -> None:
    """Generate a fraud dataset, train a few models, track them and compare."""
    if auth:
        from dockyard._demo_team import run_team_demo

        run_team_demo(rows=rows, seed=seed, experiment=experiment)
        return
    from dockyard.demo import run_demo

    run_demo(rows=rows, seed=seed, experiment=experiment)


@app.command()
def controller(
    once: bool = typer.Option(False, "--once", help="One pass, print what it decided, exit."),
    interval: float = typer.Option(
        None, help="Seconds between passes (default: DOCKYARD_CANARY_INTERVAL, 5)."
    ),
) -> None:
    """Run the canary controller on its own (`dockyard server` runs one too): every pass
    reads the prediction log of each running canary's step and advances, promotes or rolls
    it back. Safe next to other replicas: one pass at a time holds the lease."""
    import time

    from dockyard.backend import Backend
    from dockyard.core.config import load_settings
    from dockyard.core.errors import InvalidInput
    from dockyard.serving.controller import CanaryController

    settings = load_settings()
    every = settings.canary_interval if interval is None else interval
    if not every or every <= 0:
        raise InvalidInput(f"the controller's interval must be more than 0 seconds, got {every}")
    backend = Backend.open(settings)
    ctl = CanaryController(backend, interval=float(every))
    try:
        while True:
            for endpoint, action, reason in ctl.run_once():
                typer.echo(f"{endpoint}: {action} ({reason})")
            if once:
                return
            time.sleep(ctl.loop.interval)
    except KeyboardInterrupt:
        return
    finally:
        ctl.stop()
        backend.close()


@app.command()
def version() -> None:
    """Print Dockyard's version."""
    from dockyard import __version__

    typer.echo(__version__)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    Usage mistakes are shown by click (standalone mode); a DockyardError becomes one line on
    stderr and the exit code its class owns. This is the only place errors turn into exits.
    """
    from dockyard.cli._output import print_error
    from dockyard.core.errors import DockyardError
    from dockyard.core.secrets import scrub

    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="dockyard", standalone_mode=True)
    except DockyardError as exc:
        print_error(scrub(exc.message))
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
