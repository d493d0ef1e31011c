"""Helpers shared by the benchmark scripts: loopback ports, server processes, memory, formatting.

Nothing here imports Dockyard or the tool it is compared with: the scripts run each tool in its
own subprocess, and this module is what the parent process uses to start, watch and stop them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A loopback TCP port that is free now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def venv_script(name: str) -> str | None:
    """The console script ``name`` installed next to this interpreter, if there is one."""
    path = Path(sys.executable).parent / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without any DOCKYARD_* / MLFLOW_TRACKING_* setting, plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCKYARD_") and not k.startswith("MLFLOW_TRACKING_")
    }
    env.update(extra or {})
    return env


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class ServerProcess:
    """A server started in its own process group, so that stopping it ends every child."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    seen_pids: set[int] = field(default_factory=set)

    def start(self) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        try:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.seen_pids.add(self.proc.pid)

    def log_tail(self, lines: int = 6) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return ""

    def wait_healthy(self, url: str, timeout: float) -> float:
        """Seconds from process start until ``url`` answers 200; raises RuntimeError otherwise."""
        assert self.proc is not None
        deadline = self.started_at + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} before it was "
                    f"healthy:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=0.5) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.started_at
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer 200 at {url} within {timeout:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.01)

    def request_latency(self, url: str, n: int) -> float:
        """Median seconds of ``n`` sequential GETs of ``url`` (new connection each)."""
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as resp:
                resp.read()
            times.append(time.perf_counter() - t0)
        return median(times)

    def _tree(self) -> list[Any]:
        import psutil

        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen_pids.update(p.pid for p in procs)
        return procs

    def memory(self) -> dict[str, float]:
        """RSS summed over the process tree (and PSS, which counts shared pages once)."""
        import psutil

        rss = pss = 0
        n = 0
        for p in self._tree():
            try:
                rss += p.memory_info().rss
                with contextlib.suppress(psutil.AccessDenied, AttributeError):
                    pss += p.memory_full_info().pss
                n += 1
            except psutil.NoSuchProcess:
                continue
        return {"rss_bytes": float(rss), "pss_bytes": float(pss), "processes": float(n)}

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever of the tree is left."""
        import psutil

        if self.proc is None:
            return
        self._tree()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        for pid in sorted(self.seen_pids):
            try:
                p = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in sorted(self.seen_pids):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                p = psutil.Process(pid)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    p.kill()
                    p.wait(timeout=2)
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def leftovers(self) -> list[int]:
        """Pids of the tree still alive (should be empty after stop())."""
        import psutil

        alive = []
        for pid in sorted(self.seen_pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(pid)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive


def fmt_number(value: float, unit: str) -> str:
    if unit == "points/s":
        return f"{value:,.0f} pts/s"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:g} {unit}"
