"""Tracking benchmark: MLflow and Dockyard on the same work, in one run, on this machine.

    python benchmarks/tracking.py [--quick] [--points 5000] [--json out.json]

Workloads (each in local mode on a fresh SQLite file, and over HTTP against the tool's own
server):

1. ``--points`` metric points logged one call each (``mlflow.log_metric`` / ``dy.log_metric``),
   timed until the points are durable: Dockyard buffers points in a background thread, so its
   time includes ``dy.flush()``; MLflow's default fluent call is synchronous.
2. The same points in ``log_batch`` calls of 1,000 ``Metric`` entities.
3. 200 params with each tool's normal call, ``log_params(dict of 200)``.
4. Reading back the history of the batched run (``get_metric_history``, every page).

Plus, for each server: the time from process start to its health route answering 200, and its
resident memory (RSS summed over the process tree, psutil) after the workload.

Each tool's workload runs in its own subprocess (``--worker``), measured there with
``time.perf_counter`` after a warm-up that creates the store, the experiment and the
connection; the parent takes the median of the repetitions and prints one table.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import ServerProcess, clean_env, fmt_number, free_port, median, tail, venv_script

BATCH = 1_000
N_PARAMS = 200
KEY = "loss"
TARGET_RATIO = 10.0
TARGET_SINGLE_RATE = 100_000.0
TARGET_START_S = 1.0
TARGET_MEMORY_MB = 250.0
WORKER_TIMEOUT_S = 1_800
HEALTH_TIMEOUT_S = {"mlflow": 120.0, "dockyard": 60.0}

# MLflow's figures measured earlier on this machine (the anchors), for a sanity check.
MLFLOW_BEFORE = {
    ("local", "single"): 310.0,
    ("local", "batch"): 13_000.0,
    ("local", "history"): 0.07,
    ("http", "single"): 88.0,
    ("http", "batch"): 7_600.0,
    ("http", "history"): 0.19,
    ("server", "start"): 12.0,
    ("server", "rss"): 2_600.0,
}


# -- workers (run in a subprocess, import one tool each) -------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    # Collect the garbage of earlier steps first, so a cycle collection they triggered is not
    # billed to this one (MLflow's ORM history read swings 0.05 s <-> 0.22 s without this).
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _params() -> dict[str, str]:
    return {f"param_{i:03d}": f"value-{i}-{'x' * 16}" for i in range(N_PARAMS)}


def worker_mlflow(points: int, single_points: int, reps: int) -> dict[str, Any]:
    t_import, _ = _timed(lambda: __import__("mlflow"))
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    exp_id = mlflow.set_experiment("bench").experiment_id
    # Warm-up: store creation/migrations, connection pools, lazy imports.
    with mlflow.start_run() as run:
        mlflow.log_metric("warmup", 1.0, step=0)
        mlflow.log_params({"warmup": "1"})
        client.log_batch(run.info.run_id, metrics=[Metric("warmup", 2.0, 0, 1)])
        client.get_metric_history(run.info.run_id, "warmup")

    out: dict[str, Any] = {"single": [], "batch": [], "params": [], "history": []}
    for _ in range(reps):
        with mlflow.start_run() as run:

            def single() -> None:
                for i in range(single_points):
                    mlflow.log_metric(KEY, 1.0 / (i + 1), step=i)

            dt, _ = _timed(single)
            rid = run.info.run_id
        stored = len(client.get_metric_history(rid, KEY))
        assert stored == single_points, f"single: {stored} of {single_points} points stored"
        out["single"].append(single_points / dt)

        rid = client.create_run(exp_id).info.run_id

        def batch(rid: str = rid) -> None:
            for start in range(0, points, BATCH):
                ts = int(time.time() * 1000)
                client.log_batch(
                    rid,
                    metrics=[
                        Metric(KEY, 1.0 / (i + 1), ts, i)
                        for i in range(start, min(start + BATCH, points))
                    ],
                )

        dt, _ = _timed(batch)
        out["batch"].append(points / dt)
        dt, hist = _timed(lambda rid=rid: client.get_metric_history(rid, KEY))
        assert len(hist) == points, f"history: {len(hist)} of {points} points"
        out["history"].append(dt)
        client.set_terminated(rid)

        params = _params()
        with mlflow.start_run() as run:
            dt, _ = _timed(lambda params=params: mlflow.log_params(params))
            rid = run.info.run_id
        stored = len(client.get_run(rid).data.params)
        assert stored == N_PARAMS, f"params: {stored} of {N_PARAMS} stored"
        out["params"].append(dt)
    out["import_s"] = t_import
    out["version"] = mlflow.__version__
    return out


def worker_dockyard(points: int, single_points: int, reps: int) -> dict[str, Any]:
    t_import, _ = _timed(lambda: __import__("dockyard"))
    import dockyard as dy
    from dockyard import Client
    from dockyard.core.entities import Metric

    client = Client()
    exp_id = client.get_or_create_experiment("bench").experiment_id

    def history(rid: str) -> list[Metric]:
        items: list[Metric] = []
        token = None
        while True:
            page = client.get_metric_history(rid, KEY, page_token=token)
            items.extend(page.items)
            token = page.next_page_token
            if not token:
                return items

    # Warm-up: store creation/migrations, connection pools, the flush thread, lazy imports.
    with dy.start_run(experiment="bench") as run:
        dy.log_metric("warmup", 1.0, step=0)
        dy.flush()
        dy.log_params({"warmup": "1"})
        client.log_batch(run.run_id, metrics=[Metric("warmup", 2.0, 0, 1)])
        client.get_metric_history(run.run_id, "warmup")

    out: dict[str, Any] = {"single": [], "batch": [], "params": [], "history": []}
    for _ in range(reps):
        with dy.start_run(experiment="bench") as run:

            def single() -> None:
                for i in range(single_points):
                    dy.log_metric(KEY, 1.0 / (i + 1), step=i)
                dy.flush()  # durable: the buffered points are written before the clock stops

            dt, _ = _timed(single)
            rid = run.run_id
        stored = len(history(rid))
        assert stored == single_points, f"single: {stored} of {single_points} points stored"
        out["single"].append(single_points / dt)

        rid = client.start_run(exp_id).run_id

        def batch(rid: str = rid) -> None:
            for start in range(0, points, BATCH):
                ts = int(time.time() * 1000)
                client.log_batch(
                    rid,
                    metrics=[
                        Metric(KEY, 1.0 / (i + 1), ts, i)
                        for i in range(start, min(start + BATCH, points))
                    ],
                )

        dt, _ = _timed(batch)
        out["batch"].append(points / dt)
        dt, hist = _timed(lambda rid=rid: history(rid))
        assert len(hist) == points, f"history: {len(hist)} of {points} points"
        out["history"].append(dt)
        client.end_run(rid)

        params = _params()
        with dy.start_run(experiment="bench") as run:
            dt, _ = _timed(lambda params=params: dy.log_params(params))
            rid = run.run_id
        stored = len(client.get_run(rid).params)
        assert stored == N_PARAMS, f"params: {stored} of {N_PARAMS} stored"
        out["params"].append(dt)
    out["import_s"] = t_import
    out["version"] = dy.__version__
    return out


WORKERS = {"mlflow": worker_mlflow, "dockyard": worker_dockyard}


# -- the parent: servers, subprocesses, table -------------------------------------------------


class Unavailable(Exception):
    """A figure cannot be measured; the message says why."""


def run_worker(
    tool: str,
    env: dict[str, str],
    cwd: Path,
    points: int,
    single_points: int,
    reps: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    out_path = cwd / f"{tool}-result-{time.monotonic_ns()}.json"
    args = [
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--worker-out",
        str(out_path),
        "--points",
        str(points),
        "--single-points",
        str(single_points),
        "--reps",
        str(reps),
    ]
    cmd = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), *args]
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{tool} workload did not finish within {WORKER_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not out_path.is_file():
        raise Unavailable(
            f"{tool} workload failed (exit {proc.returncode}): {tail(proc.stderr, 4)}"
        )
    return json.loads(out_path.read_text())


def start_server(tool: str, root: Path, cfg: argparse.Namespace) -> tuple[ServerProcess, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if tool == "mlflow":
        cwd = root / "mlflow-server"
        exe = venv_script("mlflow")
        cmd = [exe] if exe else [sys.executable, "-m", "mlflow"]
        cmd += [
            "server",
            "--backend-store-uri",
            f"sqlite:///{cwd / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if cfg.mlflow_workers:
            cmd += ["--workers", str(cfg.mlflow_workers)]
        env = clean_env(_mlflow_env())
        if cfg.no_mlflow_jobs:
            env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        health = f"{base}/health"
    else:
        if importlib.util.find_spec("dockyard") is None:
            raise Unavailable("dockyard is not installed in this interpreter")
        if importlib.util.find_spec("dockyard.server.app") is None:
            raise Unavailable("dockyard.server.app does not exist yet (no REST server)")
        cwd = root / "dockyard-server"
        exe = venv_script("dockyard")
        cmd = [exe] if exe else [sys.executable, "-m", "dockyard.cli"]
        cmd += ["server", "--host", "127.0.0.1", "--port", str(port)]
        env = clean_env({"DOCKYARD_HOME": str(cwd / "home")})
        health = f"{base}/healthz"
    server = ServerProcess(tool, cmd, env, cwd, root / f"{tool}-server.log")
    server.start()
    return server, health


def _mlflow_env() -> dict[str, str]:
    # No telemetry thread in the way of MLflow's figures (this machine is offline anyway).
    return {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def bench_local(tool: str, root: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    cwd = root / f"{tool}-local"
    cwd.mkdir(parents=True)
    if tool == "mlflow":
        env = clean_env({**_mlflow_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"})
    else:
        env = clean_env({"DOCKYARD_HOME": str(cwd / "home")})
    res = run_worker(tool, env, cwd, cfg.points, cfg.points, cfg.reps)
    if cfg.profile and tool == "dockyard":
        run_worker(tool, env, cwd, cfg.points, cfg.points, 1, cfg.profile / "dockyard-local.prof")
    return res


def bench_http(tool: str, root: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    """Start the tool's server, time it to healthy, run the workload, read its memory, stop."""
    server: ServerProcess | None = None
    try:
        server, health = start_server(tool, root, cfg)
        start_s = server.wait_healthy(health, HEALTH_TIMEOUT_S[tool])
        latency_ms = 1000 * server.request_latency(health, 20)
        base = health.rsplit("/", 1)[0]
        cwd = root / f"{tool}-http-client"
        cwd.mkdir(parents=True)
        if tool == "mlflow":
            env = clean_env({**_mlflow_env(), "MLFLOW_TRACKING_URI": base})
            single_points = min(cfg.points, 1_000) if cfg.quick else cfg.points
        else:
            env = clean_env({"DOCKYARD_TRACKING_URI": base, "DOCKYARD_HOME": str(cwd / "home")})
            single_points = cfg.points
        out: dict[str, Any] = {
            "start_s": start_s,
            "health_latency_ms": latency_ms,
            "single_points": single_points,
        }
        try:
            if tool == "dockyard" and importlib.util.find_spec("dockyard.client.rest") is None:
                raise Unavailable("dockyard.client.rest does not exist yet (no remote client)")
            out.update(run_worker(tool, env, cwd, cfg.points, single_points, cfg.reps))
        except Unavailable as exc:
            out["workload_error"] = str(exc)
        if cfg.profile and tool == "dockyard" and "workload_error" not in out:
            run_worker(
                tool, env, cwd, cfg.points, cfg.points, 1, cfg.profile / "dockyard-http.prof"
            )
        out["memory"] = server.memory()
        return out
    finally:
        if server is not None:
            server.stop()
            left = server.leftovers()
            if left:
                print(f"warning: {tool} server processes still alive: {left}", file=sys.stderr)


# -- the table ---------------------------------------------------------------------------------

ROWS = [
    # (section, op, label, unit, higher_is_better)
    ("local", "single", "log_metric, 1 call/point, to durable", "points/s", True),
    ("local", "batch", "log_batch, 1,000 points/call", "points/s", True),
    ("local", "params", f"log_params({N_PARAMS} params)", "s", False),
    ("local", "history", "get_metric_history, all pages", "s", False),
    ("http", "single", "log_metric, 1 call/point, to durable", "points/s", True),
    ("http", "batch", "log_batch, 1,000 points/call", "points/s", True),
    ("http", "params", f"log_params({N_PARAMS} params)", "s", False),
    ("http", "history", "get_metric_history, all pages", "s", False),
    ("server", "start", "process start → health 200", "s", False),
    ("server", "rss", "RSS of process tree, after work", "MB", False),
]


def figure(results: dict[str, Any], tool: str, section: str, op: str) -> float | str:
    """A row's median value for a tool, or the reason it is missing."""
    mode = "local" if section == "local" else "http"
    res = results[tool].get(mode)
    if res is None:
        return "skipped"
    if "error" in res:
        return f"n/a: {res['error']}"
    if section == "server":
        if op == "start":
            return float(res["start_s"])
        return res["memory"]["rss_bytes"] / 1e6
    if "workload_error" in res:
        return f"n/a: {res['workload_error']}"
    return median(res[op])


def targets(section: str, op: str, unit: str) -> list[tuple[str, Callable[[float, float], bool]]]:
    higher = unit == "points/s"
    out: list[tuple[str, Callable[[float, float], bool]]] = [
        (
            f"≥{TARGET_RATIO:g}x MLflow",
            (lambda dy, ml: dy / ml >= TARGET_RATIO)
            if higher
            else (lambda dy, ml: ml / dy >= TARGET_RATIO),
        )
    ]
    if op == "single":
        out.append((f"≥{TARGET_SINGLE_RATE:,.0f} pts/s", lambda dy, ml: dy >= TARGET_SINGLE_RATE))
    if section == "server" and op == "start":
        out.append((f"<{TARGET_START_S:g} s", lambda dy, ml: dy < TARGET_START_S))
    if section == "server" and op == "rss":
        out.append((f"<{TARGET_MEMORY_MB:g} MB", lambda dy, ml: dy < TARGET_MEMORY_MB))
    return out


def ratio_text(dy: float, ml: float, unit: str) -> str:
    if unit == "points/s":
        r = dy / ml
    else:
        r = ml / dy if dy > 0 else float("inf")
    word = ("less memory", "more memory") if unit == "MB" else ("faster", "slower")
    return f"{r:,.1f}x {word[0]}" if r >= 1 else f"{1 / r:,.1f}x {word[1]}"


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for section, op, label, unit, _higher in ROWS:
        ml = figure(results, "mlflow", section, op)
        dy = figure(results, "dockyard", section, op)
        checks = targets(section, op, unit)
        row: dict[str, Any] = {
            "section": section,
            "op": op,
            "label": label,
            "unit": unit,
            "mlflow": ml,
            "dockyard": dy,
            "mlflow_before": MLFLOW_BEFORE.get((section, op)),
            "targets": [t for t, _ in checks],
        }
        if isinstance(ml, float) and isinstance(dy, float):
            row["ratio"] = ratio_text(dy, ml, unit)
            row["met"] = {t: bool(ok(dy, ml)) for t, ok in checks}
        elif isinstance(dy, float):
            row["met"] = {t: bool(ok(dy, 0.0)) for t, ok in checks if not t.endswith("MLflow")}
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], notes: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 170)
    table = Table(title=title, show_lines=False)
    for col, kw in [
        ("mode", {}),
        ("workload", {}),
        ("MLflow", {"justify": "right"}),
        ("Dockyard", {"justify": "right"}),
        ("Dockyard vs MLflow", {"justify": "right"}),
        ("MLflow before", {"justify": "right"}),
        ("target", {}),
        ("met", {}),
    ]:
        table.add_column(col, **kw)
    section_names = {"local": "local SQLite", "http": "HTTP", "server": "server"}
    last = None
    for r in rows:
        if last is not None and r["section"] != last:
            table.add_section()
        last = r["section"]

        def show(v: Any, unit: str = r["unit"]) -> str:
            return fmt_number(v, unit) if isinstance(v, float) else f"[dim]{v}[/dim]"

        met = r.get("met")
        if met is None:
            met_text = "[dim]unknown[/dim]"
        else:
            parts = []
            for t in r["targets"]:
                if t in met:
                    parts.append("[green]yes[/green]" if met[t] else "[bold red]NO[/bold red]")
                else:
                    parts.append("[dim]?[/dim]")
            met_text = " / ".join(parts)
        before = r["mlflow_before"]
        table.add_row(
            section_names[r["section"]],
            r["label"],
            show(r["mlflow"]) if isinstance(r["mlflow"], float) else _short(r["mlflow"]),
            show(r["dockyard"]) if isinstance(r["dockyard"], float) else _short(r["dockyard"]),
            r.get("ratio", "—"),
            fmt_number(before, r["unit"]) if before is not None else "—",
            " and ".join(r["targets"]),
            met_text,
        )
    console.print(table)
    for note in notes:
        console.print(f"• {note}", highlight=False, soft_wrap=False)


def _short(text: str) -> str:
    return "[dim]n/a (see notes)[/dim]" if text.startswith("n/a") else f"[dim]{text}[/dim]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition, and 1,000 points for MLflow's single-call HTTP row",
    )
    parser.add_argument("--points", type=int, default=5_000, help="metric points per workload")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument(
        "--no-mlflow-jobs",
        action="store_true",
        help="start mlflow server with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
    )
    parser.add_argument(
        "--mlflow-workers",
        type=int,
        default=None,
        help="pass --workers N to mlflow server (default: MLflow's own default)",
    )
    parser.add_argument("--skip-http", action="store_true", help="local mode only")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="also run Dockyard's workload once under cProfile, into this folder",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    # Internal: run one tool's workload in this process and write the JSON result.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--single-points", type=int, help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)

    if cfg.worker:
        res = WORKERS[cfg.worker](cfg.points, cfg.single_points or cfg.points, cfg.reps or 1)
        cfg.worker_out.write_text(json.dumps(res))
        return 0

    if cfg.points < BATCH or cfg.points % BATCH:
        parser.error(f"--points must be a positive multiple of {BATCH}")
    cfg.reps = cfg.reps or (1 if cfg.quick else 3)
    if cfg.profile:
        cfg.profile = cfg.profile.resolve()
        cfg.profile.mkdir(parents=True, exist_ok=True)

    # A SIGTERM (or Ctrl-C) still runs the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    results: dict[str, dict[str, Any]] = {"mlflow": {}, "dockyard": {}}
    t_all = time.perf_counter()
    cfg.load_start = os.getloadavg()
    try:
        for mode in ("local", "http"):
            if mode == "http" and cfg.skip_http:
                continue
            for tool in ("mlflow", "dockyard"):
                print(f"… {tool} {mode}", file=sys.stderr, flush=True)
                try:
                    fn = bench_local if mode == "local" else bench_http
                    results[tool][mode] = fn(tool, root, cfg)
                except Unavailable as exc:
                    results[tool][mode] = {"error": str(exc)}
                except RuntimeError as exc:  # a server that never became healthy
                    results[tool][mode] = {"error": str(exc)}
    finally:
        if cfg.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    cfg.load_end = os.getloadavg()
    rows = build_rows(results)
    notes = _notes(results, rows, cfg)
    versions = {t: results[t].get("local", {}).get("version", "?") for t in results}
    title = (
        f"Tracking: Dockyard {versions['dockyard']} vs MLflow {versions['mlflow']} — "
        f"{cfg.points:,} points, median of {cfg.reps}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()} ({time.perf_counter() - t_all:.0f} s)"
    )
    print_table(rows, notes, title)
    if cfg.json:
        cfg.json.write_text(
            json.dumps(
                {
                    "config": {
                        "points": cfg.points,
                        "reps": cfg.reps,
                        "quick": cfg.quick,
                        "no_mlflow_jobs": cfg.no_mlflow_jobs,
                        "mlflow_workers": cfg.mlflow_workers,
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                        "loadavg_start": cfg.load_start,
                        "loadavg_end": cfg.load_end,
                    },
                    "results": results,
                    "rows": rows,
                    "notes": notes,
                },
                indent=2,
            )
        )
    return 0


def _mlflow_settings(cfg: argparse.Namespace) -> str:
    parts = []
    if cfg.no_mlflow_jobs:
        parts.append("MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (job consumers off)")
    if cfg.mlflow_workers:
        parts.append(f"--workers {cfg.mlflow_workers}")
    return ", ".join(parts) or "shipped defaults (job execution on, default uvicorn workers)"


def _notes(
    results: dict[str, Any], rows: list[dict[str, Any]], cfg: argparse.Namespace
) -> list[str]:
    notes = [
        "Dockyard's single-call time includes dy.flush() (its points are buffered and written "
        "by a background thread); MLflow's default log_metric is synchronous.",
        "Timed after a warm-up in each subprocess (store creation, migrations, connections) "
        "and a gc.collect(); MLflow runs with MLFLOW_DISABLE_TELEMETRY=true.",
        f"mlflow server: {_mlflow_settings(cfg)}; memory is RSS summed over each server's "
        "process tree (shared pages counted per process); PSS, which counts them once, is in "
        "the JSON.",
    ]
    cpus = os.cpu_count() or 1
    busy = max(cfg.load_start[0], cfg.load_end[0]) > 0.5 * cpus
    notes.append(
        f"Load average (1 min) {cfg.load_start[0]:.2f} at start, {cfg.load_end[0]:.2f} at end "
        f"on {cpus} CPUs"
        + (": other work was running, so absolute figures are noisy." if busy else ".")
    )
    ml_http = results["mlflow"].get("http", {})
    if cfg.quick and ml_http.get("single_points", cfg.points) != cfg.points:
        notes.append(
            f"--quick: MLflow's single-call HTTP row logged {ml_http['single_points']:,} points "
            f"(not {cfg.points:,}); its rate is points/s, so it compares directly."
        )
    for tool in ("mlflow", "dockyard"):
        for mode in ("local", "http"):
            res = results[tool].get(mode) or {}
            for k in ("error", "workload_error"):
                if k in res:
                    notes.append(f"{tool} {mode} not available: {res[k]}")
            if "memory" in res:
                m = res["memory"]
                if "workload_error" in res:
                    notes.append(f"{tool} server memory was read idle (no workload ran).")
                notes.append(
                    f"{tool} server: {m['processes']:.0f} process(es), "
                    f"RSS {m['rss_bytes'] / 1e6:,.0f} MB, PSS {m['pss_bytes'] / 1e6:,.0f} MB; "
                    f"one GET of its health route takes {res['health_latency_ms']:.1f} ms "
                    "(median of 20, after start)."
                )
    for r in rows:
        before, ml, dy = r["mlflow_before"], r["mlflow"], r["dockyard"]
        if before is None or not isinstance(ml, float):
            continue
        off = ml / before if r["unit"] == "points/s" else before / ml
        if 0.5 <= off <= 2:
            continue
        line = (
            f"MLflow's '{r['label']}' ({r['section']}) measured {fmt_number(ml, r['unit'])}, "
            f"{max(off, 1 / off):.1f}x {'worse' if off < 1 else 'better'} than before "
            f"({fmt_number(before, r['unit'])})"
        )
        if isinstance(dy, float):
            line += f"; against the earlier figure Dockyard is {ratio_text(dy, before, r['unit'])}"
        notes.append(line + ".")
    return notes


if __name__ == "__main__":
    sys.exit(main())
