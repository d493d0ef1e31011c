"""Registry benchmark: MLflow and Dockyard on the same scikit-learn model, in one run.

    python benchmarks/registry.py [--reps 5] [--rows 5000] [--json out.json]

Each tool, in its own subprocess and in local mode (a fresh SQLite file and a local artifact
folder), takes the same fitted model (a scikit-learn pipeline: scaling + one-hot encoding +
histogram gradient boosting, trained on the same seeded data) through the registry's four steps:

1. log the model in a run, with an input example (both infer a signature from it);
2. register it as a new version of a registered model;
3. set the alias ``champion`` on that version;
4. load it back by alias (``models:/bench@champion``) through the generic entry point
   (``mlflow.pyfunc.load_model`` / ``dy.load_model``) and predict; the predictions are checked
   equal to the original model's. Three figures:

   - "first load in the process": the package has not been deserialised in this process yet
     (Dockyard's in-process memo of deserialised packages is cleared first);
   - "load again": the same version loaded once more in the same process (Dockyard returns a
     deep copy of the model it deserialised from the same verified bytes; MLflow loads afresh);
   - "new process": a fresh interpreter that imports the tool and loads by alias.

A warm-up runs all four steps once on another model first, so imports, migrations and connection
pools are not billed to the first timed step. Each step's figure is the median over ``--reps``
repetitions (each a new run and a new version). ``--model`` picks the pipeline: ``hgb``
(histogram gradient boosting, 50 trees: deserialising it dominates a load) or ``logreg``
(logistic regression: the tools' own overhead dominates).

Both tools save scikit-learn models with skops (a format that refuses types it does not know):
MLflow 3.17 by default, given the one type the pipeline needs beyond skops' defaults
(``skops_trusted_types``); Dockyard records the types its saving user accepted in the manifest.
Dockyard also verifies every file's sha256 against the registry's record on each load.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import clean_env, median, tail

MODEL_NAME = "bench"
ALIAS = "champion"
TARGET_LOAD_RATIO = 3.0  # Dockyard's load by alias at most a third of MLflow's time
WORKER_TIMEOUT_S = 900
HGB_TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
STEPS = ("log", "register", "alias", "load_cold", "load", "load_fresh")
LABELS = {
    "log": "log the model (with input example)",
    "register": "register a version",
    "alias": "set the alias",
    "load_cold": "load by alias, first load in the process",
    "load": "load by alias again",
    "load_fresh": "new process: import + load by alias",
}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def make_model(rows: int, kind: str = "hgb", seed: int = 7) -> tuple[Any, Any]:
    """The same fitted pipeline and feature frame for both tools (seeded)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, rows),
            "hour": rng.integers(0, 24, rows).astype("int64"),
            "account_age_days": rng.integers(1, 3000, rows).astype("int64"),
            "txn_last_24h": rng.poisson(3, rows).astype("int64"),
            "distance_km": rng.exponential(20.0, rows),
            "merchant_category": rng.choice(["grocery", "travel", "online", "fuel"], rows),
            "channel": rng.choice(["web", "app", "pos"], rows),
        }
    )
    logit = 0.02 * X["amount"] - 0.001 * X["account_age_days"] + 0.3 * X["txn_last_24h"] - 3
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    pre = ColumnTransformer(
        [
            (
                "num",
                StandardScaler(),
                ["amount", "account_age_days", "txn_last_24h", "distance_km"],
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant_category", "channel"]),
            ("pass", "passthrough", ["hour"]),
        ]
    )
    clf = (
        HistGradientBoostingClassifier(max_iter=50, random_state=seed)
        if kind == "hgb"
        else LogisticRegression(max_iter=500)
    )
    model = Pipeline([("pre", pre), ("clf", clf)])
    model.fit(X, y)
    return model, X


# -- workers -----------------------------------------------------------------------------------


def worker_mlflow(rows: int, reps: int, fresh: bool, kind: str) -> dict[str, Any]:
    t_import, _ = _timed(lambda: __import__("mlflow"))
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    client = MlflowClient()
    if fresh:  # the fresh-process load: only the import and the load
        dt, _ = _timed(lambda: mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{ALIAS}"))
        return {"load_fresh": dt, "import_s": t_import}

    model, X = make_model(rows, kind)
    expected = model.predict(X)
    mlflow.set_experiment("bench")

    def cycle(name: str) -> dict[str, float]:
        with mlflow.start_run():
            dt_log, info = _timed(
                lambda: mlflow.sklearn.log_model(
                    model,
                    name="model",
                    input_example=X.head(),
                    # MLflow 3.17 saves with skops too and wants the same type accepted.
                    skops_trusted_types=[HGB_TREE_PREDICTOR],
                )
            )
        dt_reg, mv = _timed(lambda: mlflow.register_model(info.model_uri, name))
        dt_alias, _ = _timed(lambda: client.set_registered_model_alias(name, ALIAS, mv.version))
        uri = f"models:/{name}@{ALIAS}"
        dt_cold, loaded = _timed(lambda: mlflow.pyfunc.load_model(uri))
        np.testing.assert_array_equal(np.asarray(loaded.predict(X)), expected)
        dt_load, loaded = _timed(lambda: mlflow.pyfunc.load_model(uri))
        np.testing.assert_array_equal(np.asarray(loaded.predict(X)), expected)
        return {
            "log": dt_log,
            "register": dt_reg,
            "alias": dt_alias,
            "load_cold": dt_cold,
            "load": dt_load,
        }

    cycle("warmup")
    runs = [cycle(MODEL_NAME) for _ in range(reps)]
    return {"runs": runs, "import_s": t_import, "version": mlflow.__version__}


def worker_dockyard(rows: int, reps: int, fresh: bool, kind: str) -> dict[str, Any]:
    t_import, _ = _timed(lambda: __import__("dockyard"))
    import numpy as np

    import dockyard as dy
    from dockyard.registry.packaging.api import _LOADED

    if fresh:
        dt, _ = _timed(lambda: dy.load_model(f"models:/{MODEL_NAME}@{ALIAS}"))
        return {"load_fresh": dt, "import_s": t_import}

    client = dy.Client()
    model, X = make_model(rows, kind)
    expected = model.predict(X)

    def cycle(name: str) -> dict[str, float]:
        with dy.start_run(experiment="bench"):
            dt_log, info = _timed(lambda: dy.log_model(model, "model", input_example=X.head()))
        uri = getattr(info, "model_uri", info)
        dt_reg, mv = _timed(lambda: dy.register_model(uri, name))
        dt_alias, _ = _timed(lambda: client.set_alias(name, ALIAS, mv.version))
        uri = f"models:/{name}@{ALIAS}"
        _LOADED.clear()  # nothing deserialised yet in this process: the cold figure
        dt_cold, loaded = _timed(lambda: dy.load_model(uri))
        np.testing.assert_array_equal(np.asarray(loaded.predict(X)), expected)
        dt_load, loaded = _timed(lambda: dy.load_model(uri))
        np.testing.assert_array_equal(np.asarray(loaded.predict(X)), expected)
        return {
            "log": dt_log,
            "register": dt_reg,
            "alias": dt_alias,
            "load_cold": dt_cold,
            "load": dt_load,
        }

    cycle("warmup")
    runs = [cycle(MODEL_NAME) for _ in range(reps)]
    return {"runs": runs, "import_s": t_import, "version": dy.__version__}


WORKERS = {"mlflow": worker_mlflow, "dockyard": worker_dockyard}


# -- the parent --------------------------------------------------------------------------------


def _env(tool: str, cwd: Path) -> dict[str, str]:
    if tool == "mlflow":
        return clean_env(
            {
                "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
            }
        )
    return clean_env({"DOCKYARD_HOME": str(cwd / "home")})


def run_worker(
    tool: str, cwd: Path, cfg: argparse.Namespace, fresh: bool = False
) -> dict[str, Any]:
    out_path = cwd / f"{tool}-{'fresh' if fresh else 'main'}-{time.monotonic_ns()}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--worker-out",
        str(out_path),
        "--rows",
        str(cfg.rows),
        "--reps",
        str(cfg.reps),
        "--model",
        cfg.model,
    ] + (["--fresh"] if fresh else [])
    proc = subprocess.run(
        cmd, env=_env(tool, cwd), cwd=cwd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S
    )
    if proc.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"{tool} workload failed (exit {proc.returncode}):\n{tail(proc.stderr)}")
    return json.loads(out_path.read_text())


def bench(tool: str, root: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    cwd = root / tool
    cwd.mkdir(parents=True)
    res = run_worker(tool, cwd, cfg)
    fig = {step: median([r[step] for r in res["runs"]]) for step in STEPS if step != "load_fresh"}
    fresh = [run_worker(tool, cwd, cfg, fresh=True) for _ in range(cfg.reps)]
    fig["load_fresh"] = median([f["load_fresh"] + f["import_s"] for f in fresh])
    fig["import_fresh"] = median([f["import_s"] for f in fresh])
    return {"figures": fig, "raw": res, "fresh": fresh, "version": res.get("version")}


def report(results: dict[str, dict[str, Any]], cfg: argparse.Namespace) -> str:
    from rich.console import Console
    from rich.table import Table

    ml, dk = results["mlflow"]["figures"], results["dockyard"]["figures"]
    table = Table(
        title=(
            f"Registry: MLflow {results['mlflow']['version']} vs Dockyard "
            f"{results['dockyard']['version']}, model {cfg.model} (median of {cfg.reps}, "
            f"{cfg.rows:,} rows, "
            f"{platform.python_version()}, {os.cpu_count()} cores)"
        )
    )
    for col in ("step", "MLflow", "Dockyard", "speed-up", "target"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for step in STEPS:
        ratio = ml[step] / dk[step] if dk[step] > 0 else float("inf")
        target = ""
        if step in ("load_cold", "load", "load_fresh"):
            met = ratio >= TARGET_LOAD_RATIO
            target = f"≥{TARGET_LOAD_RATIO:g}x {'met' if met else 'MISSED'}"
        table.add_row(
            LABELS[step], f"{ml[step]:.3f} s", f"{dk[step]:.3f} s", f"{ratio:.1f}x", target
        )
    table.add_row(
        "  of which: import the tool",
        f"{ml['import_fresh']:.3f} s",
        f"{dk['import_fresh']:.3f} s",
        "",
        "",
    )
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rows", type=int, default=5_000)
    p.add_argument("--model", choices=("hgb", "logreg"), default="hgb")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    cfg = p.parse_args()
    if cfg.worker:
        out = WORKERS[cfg.worker](cfg.rows, cfg.reps, cfg.fresh, cfg.model)
        cfg.worker_out.write_text(json.dumps(out))
        return
    root = Path(tempfile.mkdtemp(prefix="dockyard-bench-registry-"))
    try:
        results = {tool: bench(tool, root, cfg) for tool in ("mlflow", "dockyard")}
    finally:
        if not cfg.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    print(report(results, cfg))
    if cfg.json:
        cfg.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
