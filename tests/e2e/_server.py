"""Start a real Dockyard server process on a free loopback port, as ``dockyard server`` does."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"


@dataclass
class Server:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]
    seconds_to_healthy: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=1)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _healthy(url: str) -> bool:
    return _answers(url, "/healthz")


@contextmanager
def dockyard_process(
    home: Path,
    code: str,
    args: list[str],
    *,
    port: int,
    ready_path: str,
    log: Path,
    python_path: tuple[str, ...] = (),
    timeout: float = 30,
    **settings: str,
) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """``python -c code port *args`` with ``DOCKYARD_HOME=home`` and the given ``DOCKYARD_*``
    variables (no other), its terminal and log appended to ``log``, until ``ready_path``
    answers 200; yields (url, process, seconds to ready) and stops it on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), **settings)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *python_path, env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as log_file:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(port), *args],
            env=env,
            stdout=log_file,
            stderr=log_file,
        )
        try:
            while not _answers(url, ready_path):
                if process.poll() is not None or time.monotonic() - started > timeout:
                    pytest.fail(f"{code.splitlines()[1]}: not ready:\n{log.read_text()}")
                time.sleep(0.01)
            yield url, process, time.monotonic() - started
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_server(
    home: Path, log_level: str = "info", workers: int = 1, **settings: str
) -> Iterator[Server]:
    """``dockyard.server.app.run`` in a subprocess with ``DOCKYARD_HOME=home`` and the given
    ``DOCKYARD_*`` variables (no other), its terminal and log in ``<home>.log``; stopped on
    exit."""
    log = home.parent / f"{home.name}.log"
    code = (
        "import sys\n"
        "from dockyard.server.app import run\n"
        "run(host='127.0.0.1', port=int(sys.argv[1]), log_level=sys.argv[2], "
        "workers=int(sys.argv[3]))\n"
    )
    with dockyard_process(
        home,
        code,
        [log_level, str(workers)],
        port=free_port(),
        ready_path="/healthz",
        log=log,
        **settings,
    ) as (url, process, seconds):
        yield Server(url, home, log, process, seconds)
