"""The CLI end to end through `main(argv)`: tables, --json, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli.main import main
from dockyard.client.client import Client


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_experiments_commands_round_trip(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "experiments", "create", "fraud")[0] == 0
    code, out, _ = run_cli(capsys, "experiments", "list", "--json")
    assert code == 0
    [exp] = json.loads(out)["items"]
    assert exp["name"] == "fraud"
    assert run_cli(capsys, "experiments", "rename", "fraud", "fraud2")[0] == 0
    assert run_cli(capsys, "experiments", "delete", "fraud2")[0] == 0
    code, out, _ = run_cli(capsys, "experiments", "list", "--stage", "deleted")
    assert code == 0 and "fraud2" in out
    assert run_cli(capsys, "experiments", "restore", exp["experiment_id"])[0] == 0


def test_runs_list_show_search_end(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = Client()
    exp = client.create_experiment("cli")
    run = client.start_run(exp.experiment_id, name="r1")
    client.log_batch(run.run_id, metrics=[{"key": "auc", "value": 0.91}], params={"model": "rf"})
    code, out, _ = run_cli(capsys, "runs", "list", "-e", "cli")
    assert code == 0 and run.run_id in out and "0.91" in out
    code, out, _ = run_cli(
        capsys,
        "runs",
        "search",
        "-e",
        "cli",
        "-f",
        "metrics.auc > 0.9 and params.model = 'rf'",
        "--json",
    )
    assert [r["run_id"] for r in json.loads(out)["items"]] == [run.run_id]
    code, out, _ = run_cli(capsys, "runs", "show", run.run_id)
    assert code == 0 and "model" in out and "rf" in out
    code, out, _ = run_cli(capsys, "runs", "end", run.run_id)
    assert code == 0 and "KILLED" in out


def test_artifacts_list_and_get(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Client()
    run = client.start_run(None)
    f = tmp_path / "weights.bin"
    f.write_bytes(b"w" * 100)
    client.log_artifact(run.run_id, f, artifact_path="model")
    code, out, _ = run_cli(capsys, "artifacts", "list", run.run_id, "model")
    assert code == 0 and "model/weights.bin" in out
    dest = tmp_path / "out"
    code, out, _ = run_cli(capsys, "artifacts", "get", run.run_id, "model", "--dest", str(dest))
    assert code == 0 and (dest / "model" / "weights.bin").read_bytes() == b"w" * 100


@pytest.mark.parametrize(
    ("args", "exit_code", "needle"),
    [
        (["runs", "show", "nope"], 2, "run id must be 32"),
        (["runs", "show", "0" * 32], 3, "does not exist"),
        (["runs", "search", "-f", "metrics.auc >"], 2, "position"),
        (["runs", "end", "0" * 32, "--status", "DONE"], 2, "status"),
        (["experiments", "rename", "missing", "x"], 3, "does not exist"),
        (["artifacts", "list", "0" * 32, "../etc"], 2, ".."),
    ],
)
def test_mistakes_are_one_line_errors_with_exit_codes(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], exit_code: int, needle: str
) -> None:
    client = Client()
    client.create_experiment("existing")
    before = (client.list_audit_events(limit=10_000), client.search_runs(stage="all").items)
    code, _out, err = run_cli(capsys, *args)
    after = (client.list_audit_events(limit=10_000), client.search_runs(stage="all").items)
    assert after == before  # the store is unchanged
    assert code == exit_code
    assert err.startswith("error: ") and needle in err
    assert "Traceback" not in err and err.count("\n") <= 3


def test_the_module_entry_point_shows_an_error_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "runs", "show", "0" * 32],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKYARD_HOME": str(tmp_path)},
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: run") and "Traceback" not in proc.stderr


def test_db_upgrade_and_current(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "db", "upgrade")
    assert code == 0 and "upgraded from empty" in out
    code, out, _ = run_cli(capsys, "db", "upgrade")
    assert code == 0 and "up to date" in out
    code, out, _ = run_cli(capsys, "db", "current")
    from dockyard.store.engine import HEAD_REVISION

    assert f"current: {HEAD_REVISION}" in out
    code, _, err = run_cli(capsys, "db", "upgrade", "--url", "mysql://x/y")
    assert code == 2 and "supported: sqlite, postgresql" in err
