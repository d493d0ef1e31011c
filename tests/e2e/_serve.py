"""Helpers of the inference server tests: a store with small registered scikit-learn models,
and ``dockyard serve`` started on a free loopback port."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import dockyard_process, free_port

HERE = Path(__file__).parent
FEATURES = ("x1", "x2", "n")


def open_backend(home: Path) -> Any:
    from dockyard.backend import Backend
    from dockyard.core.config import load_settings

    return Backend.open(load_settings(overrides={"home": str(home)}, environ={}))


def training_frame(rows: int = 300, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.normal(size=rows),
            "n": rng.integers(0, 5, rows).astype("int64"),
        }
    )


def register(backend: Any, name: str, model: Any, example: Any, *, approve: bool = True) -> int:
    """Save ``model`` as a package in a run, register it under ``name``; approved by default."""
    import tempfile

    from dockyard.governance.audit import Actor
    from dockyard.registry.packaging import save_model

    actor = Actor("tester")
    tracking = backend.tracking(actor)
    registry = backend.registry(actor)
    exp = tracking.get_or_create_experiment("serve-tests")
    run = tracking.start_run(exp.experiment_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        save_model(model, folder, input_example=example[:5])
        tracking.log_artifacts(run.run_id, folder, "model")
    tracking.end_run(run.run_id)
    mv = registry.create_model_version(name, f"runs:/{run.run_id}/model")
    if approve:
        registry.transition(name, mv.version, "approved", override_gate=True, reason="test")
    return int(mv.version)


def classifier(seed: int = 0, flip: bool = False) -> Any:
    from sklearn.linear_model import LogisticRegression

    x = training_frame(seed=seed)
    y = ((x["x1"] + x["x2"]) > 0).astype("int64")
    if flip:
        y = 1 - y
    return LogisticRegression().fit(x, y), x


def regressor(seed: int = 0, scale: float = 1.0) -> Any:
    from sklearn.linear_model import LinearRegression

    x = training_frame(seed=seed)
    y = scale * (2 * x["x1"] - x["x2"] + 0.5 * x["n"])
    return LinearRegression().fit(x, y), x


@dataclass
class ServeProcess:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]
    seconds_to_ready: float

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")


def request(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers lowercased, parsed JSON body or text)."""
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        out_headers = {k.lower(): v for k, v in resp.getheaders()}
        try:
            parsed: Any = json.loads(payload)
        except ValueError:
            parsed = payload.decode("utf-8", "replace")
        return resp.status, out_headers, parsed
    finally:
        conn.close()


@contextmanager
def running_serve(
    home: Path, *endpoints: str, log_level: str = "info", workers: int = 1, **settings: str
) -> Iterator[ServeProcess]:
    """``dockyard.server.serve_app.run`` in a subprocess on ``home`` (``DOCKYARD_*`` from
    ``settings`` only), until /v2/health/ready answers 200; stopped on exit."""
    log = home.parent / f"{home.name}-serve.log"
    # scikit-learn as it is unless a test asks for the compiled runtime (its own tests:
    # test_serve_compiled.py): no background compiling competing for the cores.
    settings.setdefault("DOCKYARD_SERVE_RUNTIME", "native")
    code = (
        "import sys\n"
        "from dockyard.server.serve_app import run\n"
        "names = [n for n in sys.argv[3].split(',') if n] or None\n"
        "run(endpoints=names, host='127.0.0.1', port=int(sys.argv[1]), log_level=sys.argv[2], "
        "workers=int(sys.argv[4]))\n"
    )
    with dockyard_process(
        home,
        code,
        [log_level, ",".join(endpoints), str(workers)],
        port=free_port(),
        ready_path="/v2/health/ready",
        log=log,
        # The tests' folder, so the server can import the test models (e2e._serve_models).
        python_path=(str(HERE.parent),),
        timeout=60,
        **settings,
    ) as (url, process, seconds):
        yield ServeProcess(url, home, log, process, seconds)
