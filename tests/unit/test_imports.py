"""Layers and import cost, checked in fresh interpreters."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "dockyard"
SERVICES = ["core", "store", "artifacts", "data", "tracking", "registry", "governance", "serving"]
SHELL_IMPORT = re.compile(
    r"^\s*(from|import)\s+(fastapi|starlette|typer|click|uvicorn|dockyard\.(server|cli))\b", re.M
)


def _modules_loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_import_dockyard_loads_no_heavy_dependency() -> None:
    loaded = _modules_loaded("import dockyard")
    heavy = {"sqlalchemy", "pandas", "sklearn", "numpy", "fastapi", "httpx", "alembic", "typer"}
    assert not heavy & loaded


def test_cli_help_loads_no_heavy_dependency() -> None:
    loaded = _modules_loaded(
        "import sys; sys.argv=['dockyard','--help']\n"
        "from dockyard.cli.main import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])"
    )
    assert not {"sqlalchemy", "pandas", "sklearn", "numpy", "fastapi", "httpx"} & loaded


def test_remote_clients_load_no_store() -> None:
    """A laptop talking to a server needs neither SQLAlchemy nor the data stack to connect."""
    loaded = _modules_loaded("import dockyard.client.rest, dockyard.client.rest_registry")
    assert not {"sqlalchemy", "alembic", "pandas", "sklearn", "numpy"} & loaded


def test_services_and_foundations_never_import_a_shell() -> None:
    offenders = []
    for pkg in SERVICES:
        for path in (SRC / pkg).rglob("*.py"):
            if SHELL_IMPORT.search(path.read_text()):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_foundations_never_import_a_service() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+dockyard\.(tracking|data|client)\b", re.M)
    offenders = []
    for pkg in ("core", "artifacts", "governance"):
        for path in (SRC / pkg).rglob("*.py"):
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
