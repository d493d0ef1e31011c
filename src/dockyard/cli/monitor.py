"""`dockyard monitor`: drift, data quality and performance of an endpoint's traffic.

Like ``dockyard logs``, these commands work where the prediction log is: on the settings'
store and artifact root (``DOCKYARD_DB_URL``, ``DOCKYARD_ARTIFACT_ROOT`` or
``DOCKYARD_HOME``), acting as the local user; a server exposes the same under
``/api/v1/endpoints/{name}/monitoring``. Running and storing a monitor, and declaring one,
need ``endpoint:deploy``; reading runs, series, events and reports ``endpoint:read``::

    dockyard monitor run --endpoint fraud --window 1h --report report.html
    dockyard monitor declare fraud nightly --window 1h --performance "accuracy>=0.9" \\
        --webhook https://hooks.example.com/dockyard
    dockyard monitor runs --endpoint fraud
    dockyard monitor report --endpoint fraud --out report.html
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from dockyard.cli._output import console as _console
from dockyard.cli._output import fmt_time, print_json, print_table

app = typer.Typer(
    help="Production monitoring: drift, data quality, performance with delayed labels, "
    "reports, scheduled monitors and alerts.",
    no_args_is_help=True,
)

ENDPOINT = typer.Option(..., "--endpoint", "-e", help="The endpoint.")
JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
_PERF = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


def _service() -> Any:
    from dockyard.client.client import _local_backend
    from dockyard.core.config import load_settings
    from dockyard.governance.audit import Actor

    settings = load_settings()
    return _local_backend(settings).monitoring(Actor.local(settings.user))


def _time(value: str | None, option: str) -> int | None:
    from dockyard.serving.predlog import parse_time_spec

    return parse_time_spec(value, option=option)


@app.command("run")
def run(
    endpoint: str = ENDPOINT,
    window: str = typer.Option(
        None, "--window", "-w", help="The last 15m / 1h / 1d up to now, or the last 1000rows."
    ),
    monitor: str = typer.Option(
        None, "--monitor", "-m", help="Use the spec of this declared monitor (and store as it)."
    ),
    since: str = typer.Option(None, "--since", help="Window start: duration ago, ISO or ms."),
    until: str = typer.Option(None, "--until", help="Window end: duration ago, ISO or ms."),
    reference: Path = typer.Option(
        None,
        "--reference",
        help="A .csv/.parquet file to compare against, instead of the primary model's "
        "training-data profile.",
    ),
    record: bool = typer.Option(
        True, "--record/--no-record", help="Store the run (needs endpoint:deploy)."
    ),
    report: Path = typer.Option(None, "--report", help="Write the HTML report here."),
    as_json: bool = JSON,
) -> None:
    """Evaluate one window of an endpoint's prediction log: drift per feature and of the
    predictions, data quality, performance from the labels that have arrived."""
    from dockyard.monitoring.report import render_rich, write_report

    service = _service()
    err, console = _console(stderr=True), _console()
    with err.status("monitoring…") as status:
        result = service.run(
            endpoint,
            monitor=monitor,
            window=window,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            reference=None if reference is None else str(reference),
            record=record,
            progress=lambda msg: status.update(msg + "…"),
        )
    if as_json:
        print_json(result.result)
    else:
        console.print(render_rich(result.result))
        if record:
            console.print(f"stored as run {result.id}")
    if report is not None:
        history = service.history(result) if record else None
        path = write_report(result.result, report, history=history, fmt=_fmt(report))
        console.print(f"report written to {path}")


def _fmt(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "html"


@app.command("report")
def report(
    out: Path = typer.Option(..., "--out", "-o", help="Write here (.html, or .json)."),
    run_id: str = typer.Option(None, "--run", help="This run (default: the newest)."),
    endpoint: str = typer.Option(None, "--endpoint", "-e", help="The newest run of this endpoint."),
    monitor: str = typer.Option(None, "--monitor", "-m", help="The newest run of this monitor."),
) -> None:
    """Write the report of a stored run: a self-contained HTML page (opens offline), or JSON."""
    from dockyard.core.errors import InvalidInput
    from dockyard.monitoring.report import write_report

    service = _service()
    if run_id:
        stored = service.get_run(run_id)
    elif endpoint:
        stored = service.latest_run(endpoint, monitor)
    else:
        raise InvalidInput("name a run (--run ID) or an endpoint (--endpoint NAME)")
    path = write_report(stored.result, out, history=service.history(stored), fmt=_fmt(out))
    _console().print(f"report of run {stored.id} written to {path}")


@app.command("runs")
def runs(
    endpoint: str = ENDPOINT,
    monitor: str = typer.Option(None, "--monitor", "-m", help="Only this monitor's runs."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Newest windows to show."),
    as_json: bool = JSON,
) -> None:
    """The stored runs of an endpoint, newest window first."""
    got = _service().list_runs(endpoint, monitor=monitor, limit=limit)
    if as_json:
        print_json([r.summary() for r in got])
        return
    print_table(
        f"Monitor runs of {endpoint}",
        ["run", "monitor", "window (UTC)", "rows", "status", "drift", "drifted", "quality"],
        [
            (
                r.id,
                r.monitor,
                f"{fmt_time(r.window_start)} → {fmt_time(r.window_end)}",
                r.rows,
                r.status,
                "yes" if r.dataset_drift else "no",
                f"{r.n_drifted}/{r.n_features}",
                r.n_quality_issues,
            )
            for r in got
        ],
    )


@app.command("show")
def show(run_id: str = typer.Argument(..., help="The run id."), as_json: bool = JSON) -> None:
    """One stored run in full."""
    from dockyard.monitoring.report import render_rich

    stored = _service().get_run(run_id)
    if as_json:
        print_json(stored.result)
    else:
        _console().print(render_rich(stored.result))


@app.command("declare")
def declare(
    endpoint: str = typer.Argument(..., help="The endpoint."),
    name: str = typer.Argument(..., help="The monitor's name, e.g. hourly."),
    window: str = typer.Option("1h", "--window", "-w", help="Tumbling window: 1h, 15m, 1000rows."),
    schedule: str = typer.Option(None, "--schedule", help="Run every (default: the window)."),
    feature: list[str] = typer.Option(
        None, "--feature", "-f", help="Monitor only these features (repeat)."
    ),
    test: list[str] = typer.Option(
        None, "--test", help="Override a feature's test: COLUMN=TEST or COLUMN=TEST:THRESHOLD."
    ),
    drift_share: float = typer.Option(0.5, "--drift-share", help="Dataset drift at this share."),
    min_rows: int = typer.Option(50, "--min-rows", help="No verdicts on smaller windows."),
    performance: str = typer.Option(
        None, "--performance", help='Alert below/above, e.g. "accuracy>=0.9" or "rmse<=3".'
    ),
    webhook: list[str] = typer.Option(None, "--webhook", help="POST events here (repeat)."),
    allow_private: bool = typer.Option(
        False, "--allow-private", help="Let webhooks target private/loopback addresses."
    ),
    reference: Path = typer.Option(None, "--reference", help="Reference .csv/.parquet file."),
    disabled: bool = typer.Option(False, "--disabled", help="Declare it switched off."),
) -> None:
    """Declare (or replace) a monitor the server's scheduler runs on each window."""
    from dockyard.core.errors import InvalidInput

    spec: dict[str, Any] = {
        "window": window,
        "schedule": schedule,
        "features": list(feature or []) or None,
        "drift_share": drift_share,
        "min_rows": min_rows,
        "reference": None if reference is None else str(reference.resolve()),
        "webhooks": [{"url": u, "allow_private": allow_private} for u in webhook or []],
    }
    tests: dict[str, Any] = {}
    for item in test or []:
        col, sep, rest = item.partition("=")
        if not sep or not col or not rest:
            raise InvalidInput(f"--test {item!r}: use COLUMN=TEST or COLUMN=TEST:THRESHOLD")
        name_, _, thr = rest.partition(":")
        try:
            tests[col] = [name_, float(thr)] if thr else name_
        except ValueError:
            raise InvalidInput(f"--test {item!r}: the threshold must be a number") from None
    spec["tests"] = tests
    if performance:
        m = _PERF.match(performance)
        if m is None:
            raise InvalidInput(f"--performance {performance!r}: use METRIC>=VALUE or METRIC<=VALUE")
        metric, op, value = m.group(1), m.group(2), float(m.group(3))
        spec["performance"] = {"metric": metric, ("min" if ">" in op else "max"): value}
    mon = _service().declare(endpoint, name, spec, enabled=not disabled)
    _console().print(
        f"monitor {mon.endpoint}/{mon.name} version {mon.version} "
        f"({'enabled' if mon.enabled else 'disabled'}): window {mon.spec['window']}"
    )


@app.command("list")
def list_(
    endpoint: str = typer.Option(None, "--endpoint", "-e", help="Only this endpoint's."),
    as_json: bool = JSON,
) -> None:
    """Declared monitors."""
    got = _service().list_monitors(endpoint)
    if as_json:
        print_json([m.public_dict() for m in got])
        return
    print_table(
        "Monitors",
        ["endpoint", "name", "enabled", "window", "schedule", "webhooks", "last window end"],
        [
            (
                m.endpoint,
                m.name,
                "yes" if m.enabled else "no",
                m.spec.get("window"),
                m.spec.get("schedule") or m.spec.get("window"),
                len(m.spec.get("webhooks") or []),
                fmt_time(m.last_window_end),
            )
            for m in got
        ],
    )


@app.command("delete")
def delete(
    endpoint: str = typer.Argument(..., help="The endpoint."),
    name: str = typer.Argument(..., help="The monitor."),
) -> None:
    """Delete a declared monitor (its stored runs stay)."""
    _service().delete_monitor(endpoint, name)
    _console().print(f"monitor {endpoint}/{name} deleted")


@app.command("series")
def series(
    endpoint: str = ENDPOINT,
    metric: list[str] = typer.Option(
        ["drift_score"], "--metric", help="drift_score, share_drifted, accuracy, coverage…"
    ),
    feature: str = typer.Option(None, "--feature", "-f", help="Only this feature."),
    since: str = typer.Option("7d", "--since", help="From: a duration ago, ISO or ms."),
    as_json: bool = JSON,
) -> None:
    """Stored time series: one value per window (and feature, and variant)."""
    points = _service().series(
        endpoint, metrics=list(metric), feature=feature, since=_time(since, "--since")
    )
    if as_json:
        print_json(points)
        return
    print_table(
        f"Series of {endpoint}",
        ["window start (UTC)", "monitor", "variant", "feature", "metric", "value"],
        [
            (
                fmt_time(p["window_start_ms"]),
                p["monitor"],
                p["variant"],
                p["feature"],
                p["metric"],
                p["value"],
            )
            for p in points
        ],
    )


@app.command("events")
def events(
    endpoint: str = typer.Option(None, "--endpoint", "-e", help="Only this endpoint's."),
    after: int = typer.Option(0, "--after", help="Only events with a larger id (a cursor)."),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    as_json: bool = JSON,
) -> None:
    """Events monitor runs raised (drift.detected, performance.degraded, quality.issues)."""
    got = _service().events(endpoint=endpoint, after_id=after, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in got])
        return
    print_table(
        "Monitoring events",
        ["id", "time (UTC)", "kind", "endpoint", "monitor", "message"],
        [
            (e.id, fmt_time(e.time), e.kind, e.endpoint, e.monitor, e.payload.get("message"))
            for e in got
        ],
    )
