"""`dockyard deploy` and `dockyard endpoints ...` through `main(argv)`, on SQLite and PostgreSQL.

Local mode on a fresh store; fraud versions 1..3 approved, 4 a candidate. Every command, as a
table and as JSON; mistakes are one line on stderr with the exit code of their class (2 bad
input, 3 not found, 4 conflict, 5 permission).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_approvals import register  # the shared package helper

from dockyard.cli.main import main


@pytest.fixture
def versions(sdk_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.client.client import Client, _local_backend

    monkeypatch.setenv("DOCKYARD_USER", "boss")
    client = Client()
    reg = client.registry
    reg.create_registered_model("fraud")
    for v in range(1, 5):
        folder = tmp_path / f"pkg{v}"
        assert register(_local_backend(client.settings), reg, folder, f"m{v}".encode()) == v
        if v < 4:
            reg.transition("fraud", v, "approved", override_gate=True, reason="test")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, (args, out, err)
    return out


def ok_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    return json.loads(ok(capsys, *args, "--json"))


def fails(capsys: pytest.CaptureFixture[str], code: int, *args: str) -> str:
    got, out, err = run_cli(capsys, *args)
    assert got == code, (args, got, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    return err


def test_deploy_ab_shadow_weights_promote_rollback_delete(
    versions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ok(capsys, "deploy", "fraud/1", "--endpoint", "fraud", "--description", "scorer")
    assert out == "created: endpoint fraud (policy version 1): fraud-1=fraud/1:100%*\n"
    out = ok(capsys, "deploy", "--endpoint", "fraud", "--ab", "fraud/2:30", "-r", "try B")
    assert out.startswith("A/B variant added: endpoint fraud (policy version 2)")
    assert "fraud-1=fraud/1:70%*, fraud-2=fraud/2:30%" in out
    ep = ok_json(capsys, "deploy", "--endpoint", "fraud", "--shadow", "fraud/4", "--variant", "c4")
    assert ep["policy"]["shadows"] == {"c4": {"model": "fraud", "version": 4}}
    assert ep["version"] == 3 and ep["last_good_version"] == 2

    out = ok(capsys, "endpoints", "list")
    assert "fraud" in out and "fraud/1" in out and "scorer" in out and "fraud-2=fraud/2:30%" in out
    [listed] = ok_json(capsys, "endpoints", "list")
    assert listed["name"] == "fraud" and listed["version"] == 3

    out = ok(capsys, "endpoints", "show", "fraud")
    assert "fraud   policy version 3   last good version 2" in out and "scorer" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["fraud-1"] == ["fraud-1", "fraud", "1", "70", "%", "primary"]
    assert lines["fraud-2"] == ["fraud-2", "fraud", "2", "30", "%", "variant"]
    assert lines["c4"] == ["c4", "fraud", "4", "copy", "shadow"]
    assert ok_json(capsys, "endpoints", "show", "fraud") == ep

    out = ok(capsys, "endpoints", "weights", "fraud", "fraud-1=50", "fraud-2=50", "-r", "even")
    assert out.startswith("weights set: endpoint fraud (policy version 4)")
    out = ok(capsys, "endpoints", "remove", "fraud", "c4")
    assert out.startswith("removed c4: endpoint fraud (policy version 5)") and "shadow" not in out
    out = ok(capsys, "endpoints", "promote", "fraud", "fraud-2", "--reason", "B won")
    assert out == "promoted fraud-2: endpoint fraud (policy version 6): fraud-2=fraud/2:100%*\n"
    ep = ok_json(capsys, "endpoints", "rollback", "fraud", "-r", "complaints")
    assert ep["policy"]["weights"] == {"fraud-1": 50, "fraud-2": 50} and ep["version"] == 7
    err = fails(capsys, 4, "endpoints", "rollback", "fraud")
    assert "already runs its last good policy" in err

    out = ok(capsys, "endpoints", "history", "fraud")
    assert "Policy history of fraud" in out and "B won" in out and "rollback to version 5" in out
    history = ok_json(capsys, "endpoints", "history", "fraud", "--limit", "3")
    assert [h["version"] for h in history] == [7, 6, 5]
    assert history[0]["created_by"] == "boss"

    out = ok(capsys, "endpoints", "decisions", "fraud")
    assert "Decisions on fraud" in out and "complaints" in out
    assert "6 -> 7" in out and "restored_version=5" in out and "variant=fraud-2" in out
    assert "boss" in out and "weights={" in out
    decisions = ok_json(capsys, "endpoints", "decisions", "fraud")
    assert [d["action"] for d in decisions] == [
        "rollback",
        "promote",
        "remove",
        "weights",
        "shadow",
        "ab",
        "deploy",
    ]
    assert decisions[0]["evidence"] == {"restored_version": 5}
    assert len(ok_json(capsys, "endpoints", "decisions", "fraud", "--limit", "2")) == 2

    assert ok(capsys, "endpoints", "delete", "fraud", "-r", "done") == "deleted endpoint fraud\n"
    err = fails(capsys, 3, "endpoints", "show", "fraud")
    assert err == "error: endpoint 'fraud' does not exist\n"
    assert ok_json(capsys, "endpoints", "list") == []
    assert "Endpoints" in ok(capsys, "endpoints", "list")
    ok(capsys, "deploy", "fraud/1", "--endpoint", "fraud")
    assert ok_json(capsys, "endpoints", "delete", "fraud") == {"deleted": "fraud"}


def test_canary(versions: None, capsys: pytest.CaptureFixture[str]) -> None:
    from dockyard.client.client import Client

    Client().registry.set_alias("fraud", "champion", 1)
    ok(capsys, "deploy", "fraud@champion", "--endpoint", "c", "--key-field", "user_id")
    out = ok(
        capsys,
        "deploy",
        "fraud/3",
        "--endpoint",
        "c",
        "--canary",
        "10,50,100",
        "--bake",
        "10m",
        "--min-requests",
        "20",
        "--gate",
        "error_rate<0.01",
        "--gate",
        "p99_ms<50",
    )
    assert out.startswith("canary started: endpoint c (policy version 2)")
    assert "canary step 1/3 (10%)" in out
    out = ok(capsys, "endpoints", "show", "c")
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["fraud-1"][-1] == "primary" and lines["fraud-3"][-3:] == ["10", "%", "canary"]
    assert "sticky key: header X-Dockyard-Key or the request field 'user_id'" in out
    text = " ".join(out.split())
    assert "canary fraud-3: step 1/3 at 10 % (steps 10, 50, 100), bake 10m and at least 20 " in text
    assert "gates: error_rate<0.01, p99_ms<50" in text
    plan = ok_json(capsys, "endpoints", "show", "c")["policy"]["canary"]
    assert plan["steps"] == [10, 50, 100] and plan["bake_seconds"] == 600
    assert plan["gates"] == ["error_rate<0.01", "p99_ms<50"] and plan["min_requests"] == 20

    err = fails(capsys, 4, "deploy", "--endpoint", "c", "--ab", "fraud/2:5")
    assert "canary of fraud/3 is running" in err
    out = ok(capsys, "endpoints", "promote", "c")  # the running canary
    assert out == "promoted fraud-3: endpoint c (policy version 3): fraud-3=fraud/3:100%*\n"
    ok(capsys, "deploy", "fraud/2", "--endpoint", "c", "--canary", "50,100")
    assert "canary" in ok(capsys, "endpoints", "show", "c")
    out = ok(capsys, "endpoints", "rollback", "c", "--reason", "slow")
    assert out == "rolled back: endpoint c (policy version 5): fraud-3=fraud/3:100%*\n"


def test_mistakes_are_one_line_with_their_exit_code(
    versions: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(capsys, "deploy", "fraud/1", "--endpoint", "e")
    # How the command line is used: exit 2, saying what to write instead.
    assert "name the model to deploy" in fails(capsys, 2, "deploy", "--endpoint", "e")
    err = fails(capsys, 2, "deploy", "fraud/2", "--endpoint", "e", "--ab", "fraud/2:5")
    assert "--ab names the model itself" in err
    err = fails(capsys, 2, "deploy", "--endpoint", "e", "--ab", "fraud/2")
    assert "--ab takes MODEL:WEIGHT, e.g. fraud/6:50" in err
    err = fails(capsys, 2, "deploy", "--endpoint", "e", "--ab", "fraud/2:lots")
    assert "MODEL:WEIGHT" in err
    err = fails(capsys, 2, "deploy", "fraud/2", "--endpoint", "e", "--bake", "1m")
    assert "only apply with --canary" in err
    err = fails(capsys, 2, "deploy", "fraud/2", "--endpoint", "e", "--gate", "error_rate<0.1")
    assert "only apply with --canary" in err
    err = fails(capsys, 2, "deploy", "--endpoint", "e", "--shadow", "fraud/4", "--canary", "5,100")
    assert "choose one of --ab, --shadow and --canary, not --shadow and --canary" in err
    err = fails(capsys, 2, "deploy", "fraud/2", "--endpoint", "e", "--canary", "50,10,100")
    assert "must increase" in err
    err = fails(
        capsys, 2, "deploy", "fraud/2", "--endpoint", "e", "--canary", "50,100", "--gate", "fast"
    )
    assert "is not of the form metric<op>number" in err
    assert "endpoint name" in fails(capsys, 2, "deploy", "fraud/1", "--endpoint", "../x")
    assert "VARIANT=PERCENT" in fails(capsys, 2, "endpoints", "weights", "e", "fraud-1")
    assert "sum to 100" in fails(capsys, 2, "endpoints", "weights", "e", "fraud-1=90")
    code, _, err = run_cli(capsys, "deploy", "fraud/1")  # click's own usage error
    assert code == 2 and "--endpoint" in err

    # Not found (3) and conflicts (4).
    assert "does not exist" in fails(capsys, 3, "deploy", "--endpoint", "new", "--ab", "fraud/2:5")
    assert "no version 9" in fails(capsys, 3, "deploy", "fraud/9", "--endpoint", "e")
    assert "no variant 'zz'" in fails(capsys, 3, "endpoints", "remove", "e", "zz")
    assert "does not exist" in fails(capsys, 3, "endpoints", "history", "nope")
    assert "does not exist" in fails(capsys, 3, "endpoints", "decisions", "nope")
    assert "does not exist" in fails(capsys, 3, "endpoints", "delete", "nope")
    err = fails(capsys, 4, "deploy", "fraud/4", "--endpoint", "e")
    assert "only approved or production versions take live traffic" in err
    assert "is the primary" in fails(capsys, 4, "endpoints", "remove", "e", "fraud-1")
    assert "no earlier policy" in fails(capsys, 4, "endpoints", "rollback", "e")

    # Permissions (5): a viewer looks, and changes nothing.
    from dockyard.client.client import Client

    client = Client()
    client.create_user("boss", roles=["admin"])
    client.create_user("vic", roles=["viewer"])
    monkeypatch.setenv("DOCKYARD_USER", "vic")
    assert "fraud-1" in ok(capsys, "endpoints", "show", "e")
    for args in (
        ("deploy", "fraud/2", "--endpoint", "e"),
        ("endpoints", "promote", "e", "fraud-1"),
        ("endpoints", "rollback", "e"),
        ("endpoints", "delete", "e"),
        ("endpoints", "weights", "e", "fraud-1=100"),
    ):
        assert "'vic' lacks permission endpoint:deploy" in fails(capsys, 5, *args)
    assert ok_json(capsys, "endpoints", "show", "e")["version"] == 1


def test_user_text_prints_as_typed(versions: None, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "deploy", "fraud/1", "--endpoint", "e", "--description", "[red]x[/red]")
    ok(capsys, "deploy", "--endpoint", "e", "--ab", "fraud/2:10", "-r", "[bold]why[/bold]")
    assert "[red]x[/red]" in ok(capsys, "endpoints", "show", "e")
    assert "[red]x[/red]" in ok(capsys, "endpoints", "list")
    assert "[bold]why[/bold]" in ok(capsys, "endpoints", "decisions", "e")
    assert "[bold]why[/bold]" in ok(capsys, "endpoints", "history", "e")
