"""`dockyard users|tokens|grants` through `main(argv)`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_tokens_grants(
    sdk_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_USER", "boss")
    code, _, err = run_cli(capsys, "users", "create", "ana")
    assert code == 2 and "first user" in err and "--role admin" in err
    assert run_cli(capsys, "users", "create", "boss", "--role", "admin")[0] == 0
    code, out, _ = run_cli(capsys, "users", "create", "ci", "--service-account", "--json")
    assert code == 0 and json.loads(out)["kind"] == "service_account"
    code, out, _ = run_cli(
        capsys, "grants", "add", "ci", "editor", "--on", "experiment", "--id", "1"
    )
    assert code == 0 and "granted editor to ci on experiment 1" in out

    code, out, _ = run_cli(capsys, "tokens", "create", "ci", "--name", "github")
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("dy_")
    code, out, _ = run_cli(capsys, "tokens", "list", "--json")
    [tok] = json.loads(out)
    assert tok["user"] == "ci" and tok["name"] == "github" and secret not in out
    code, out, _ = run_cli(capsys, "tokens", "list")
    assert code == 0 and tok["token_id"] in out and "active" in out and secret not in out

    code, out, _ = run_cli(capsys, "users", "list", "--json")
    roles = {u["name"]: u["roles"] for u in json.loads(out)}
    assert roles == {"boss": ["admin"], "ci": ["editor on experiment 1"]}
    code, out, _ = run_cli(capsys, "grants", "list")
    assert code == 0 and "editor" in out and "experiment" in out

    assert run_cli(capsys, "tokens", "revoke", tok["token_id"])[0] == 0
    code, out, _ = run_cli(capsys, "tokens", "list")
    assert "revoked" in out
    assert (
        run_cli(capsys, "grants", "remove", "ci", "editor", "--on", "experiment", "--id", "1")[0]
        == 0
    )
    assert run_cli(capsys, "users", "disable", "ci")[0] == 0
    code, out, _ = run_cli(capsys, "users", "list")
    assert "yes" in out

    # Now the local user must be a Dockyard user: an unknown one is told what to do.
    monkeypatch.setenv("DOCKYARD_USER", "stranger")
    code, _, err = run_cli(capsys, "experiments", "list")
    assert code == 5 and "dockyard users create stranger" in err
    monkeypatch.setenv("DOCKYARD_USER", "ci")
    code, _, err = run_cli(capsys, "experiments", "list")
    assert code == 5 and "disabled" in err
