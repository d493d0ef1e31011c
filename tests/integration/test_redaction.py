"""Redaction policies per endpoint: the service and `dockyard redaction`, on SQLite and
PostgreSQL (a real store, no mocks)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dockyard.backend import Backend
from dockyard.cli.main import main
from dockyard.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from dockyard.governance.audit import Actor, verify_audit_log
from dockyard.governance.permissions import PERMISSION_ATTR, public_methods
from dockyard.governance.redaction import RedactionKey, RedactionPolicy, RedactionRule
from dockyard.governance.redaction_service import REDACTION_PERMISSIONS, RedactionService

SECRET = "redaction-test-key-0123456789abcdef"
RULES = [
    {"column": "email", "action": "drop"},
    {"column": "customer_id", "action": "hash"},
    {"column": "card_number", "action": "mask", "keep": 4},
]


def _service(backend: Backend, name: str) -> RedactionService:
    return RedactionService(backend.store, Actor(name))


def _team(backend: Backend) -> None:
    """root (admin); dee deploys endpoint 'fraud' only; vic is a viewer everywhere."""
    ids = backend.identity(Actor("someone"))
    ids.create_user("root", roles=["admin"])
    ids = backend.identity(Actor("root"))
    ids.create_user("dee")
    ids.grant("dee", "deployer", "endpoint", "fraud")
    ids.create_user("vic", roles=["viewer"])


def _events(backend: Backend, action: str) -> list[Any]:
    return backend.tracking(Actor("root")).list_audit_events(action=action)


def test_every_public_method_is_declared_and_gated() -> None:
    methods = public_methods(RedactionService)
    assert sorted(REDACTION_PERMISSIONS) == methods
    for name in methods:
        assert (
            getattr(getattr(RedactionService, name), PERMISSION_ATTR)
            == (REDACTION_PERMISSIONS[name])
        )
    assert REDACTION_PERMISSIONS["set_policy"] == "endpoint:deploy"
    assert REDACTION_PERMISSIONS["get_policy"] == "endpoint:read"


def test_set_get_list_delete_with_versions_and_audit(backend: Backend) -> None:
    svc = _service(backend, "ana")  # a store without users: the local user may do everything
    saved = svc.set_policy("fraud", RULES)
    assert saved.endpoint == "fraud" and saved.version == 1 and saved.updated_by == "ana"
    assert saved.policy == RedactionPolicy.from_rules(RULES)
    assert svc.get_policy("fraud") == saved
    assert svc.effective_policy("fraud") == saved.policy
    assert svc.effective_policy("other") == RedactionPolicy()  # none: an empty policy
    with pytest.raises(NotFound, match="endpoint 'other' has no redaction policy"):
        svc.get_policy("other")

    # Replacing keeps one row and counts versions; a RedactionPolicy works as well as dicts.
    again = svc.set_policy("fraud", RedactionPolicy((RedactionRule("email", "hash"),)))
    assert again.version == 2 and again.rules == (RedactionRule("email", "hash"),)
    svc.set_policy("churn", [{"column": "phone", "action": "mask", "keep": 2}])
    assert [(p.endpoint, p.version) for p in svc.list_policies()] == [("churn", 1), ("fraud", 2)]

    # Optimistic concurrency: a stale version is refused and nothing changes.
    with pytest.raises(Conflict, match="at version 2, not version 1"):
        svc.set_policy("fraud", RULES, expected_version=1)
    with pytest.raises(Conflict, match="at version 2, not version 0"):
        svc.set_policy("fraud", RULES, expected_version=0)
    assert svc.set_policy("fraud", RULES, expected_version=2).version == 3
    assert svc.set_policy("new", RULES, expected_version=0).version == 1
    with pytest.raises(Conflict, match="at no policy, not version 4"):
        svc.set_policy("ghost", RULES, expected_version=4)
    assert svc.get_policy("fraud").version == 3

    removed = svc.delete_policy("fraud")
    assert removed.version == 3 and removed.policy == RedactionPolicy.from_rules(RULES)
    with pytest.raises(NotFound):
        svc.delete_policy("fraud")
    assert svc.effective_policy("fraud") == RedactionPolicy()

    sets = _events(backend, "redaction.set")
    assert len(sets) == 5
    first = min(sets, key=lambda e: e.event_id)
    assert first.actor == "ana" and first.resource_type == "endpoint"
    assert first.resource_id == "fraud"
    assert first.details["rules"] == RULES and first.details["version"] == 1
    assert first.details["previous_rules"] is None
    second = sorted(sets, key=lambda e: e.event_id)[1]
    assert second.details["previous_rules"] == RULES
    [deleted] = _events(backend, "redaction.delete")
    assert deleted.resource_id == "fraud" and deleted.details == {"version": 3, "rules": RULES}
    assert verify_audit_log(backend.store).ok


def test_bad_input_is_refused_before_anything_is_written(backend: Backend) -> None:
    svc = _service(backend, "ana")
    with pytest.raises(InvalidInput, match="endpoint name"):
        svc.set_policy("a/b", RULES)
    with pytest.raises(InvalidInput, match="endpoint name"):
        svc.get_policy("")
    with pytest.raises(InvalidInput, match="at least one rule"):
        svc.set_policy("fraud", [])
    with pytest.raises(InvalidInput, match="two redaction rules"):
        svc.set_policy("fraud", [*RULES, {"column": "EMAIL", "action": "mask"}])
    with pytest.raises(InvalidInput, match="one of drop, hash, mask"):
        svc.set_policy("fraud", [{"column": "x", "action": "shred"}])
    with pytest.raises(InvalidInput, match="list of rules"):
        svc.set_policy("fraud", "email")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="expected_version"):
        svc.set_policy("fraud", RULES, expected_version=-1)
    assert svc.list_policies() == []
    assert _events(backend, "redaction.set") == []


def test_permissions_deploy_to_change_read_to_see(backend: Backend) -> None:
    _team(backend)
    _service(backend, "root").set_policy("churn", RULES)
    dee, vic = _service(backend, "dee"), _service(backend, "vic")

    assert dee.set_policy("fraud", RULES).updated_by == "dee"
    with pytest.raises(PermissionDenied, match="'dee' lacks permission endpoint:deploy on "):
        dee.set_policy("churn", RULES)
    # A deployer on 'fraud' reads only 'fraud' (its grant is on that endpoint).
    assert [p.endpoint for p in dee.list_policies()] == ["fraud"]
    with pytest.raises(PermissionDenied, match="endpoint:read on endpoint 'churn'"):
        dee.get_policy("churn")

    # A viewer reads every policy and changes none.
    assert [p.endpoint for p in vic.list_policies()] == ["churn", "fraud"]
    assert vic.get_policy("fraud").version == 1
    with pytest.raises(PermissionDenied, match="'vic' lacks permission endpoint:deploy"):
        vic.set_policy("fraud", [{"column": "x", "action": "drop"}])
    with pytest.raises(PermissionDenied, match="endpoint:deploy"):
        vic.delete_policy("fraud")
    assert vic.get_policy("fraud").version == 1  # unchanged
    assert sorted(e.actor for e in _events(backend, "redaction.set")) == ["dee", "root"]
    assert _events(backend, "redaction.delete") == []


def test_concurrent_writers_get_distinct_versions(backend: Backend) -> None:
    errors: list[BaseException] = []
    versions: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            svc = _service(backend, f"w{i}")
            for j in range(5):
                rules = [{"column": f"c{i}_{j}", "action": "drop"}]
                v = svc.set_policy("shared", rules).version
                with lock:
                    versions.append(v)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 21))
    assert _service(backend, "x").get_policy("shared").version == 20


def test_the_stored_policy_redacts_what_the_prediction_log_would_write(backend: Backend) -> None:
    svc = _service(backend, "ana")
    svc.set_policy("fraud", RULES)
    policy = svc.effective_policy("fraud")
    body = [{"email": "ana@example.com", "customer_id": 42, "card_number": "4111111111111111"}]
    out = policy.apply(body, RedactionKey(SECRET))
    assert set(out[0]) == {"customer_id", "card_number"}
    assert out[0]["card_number"] == "************1111" and out[0]["customer_id"].startswith("h:")


def test_a_0005_store_upgrades_to_0006_and_back(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from dockyard.store.engine import _alembic_config, _migration_lock, create_engines, upgrade

    engines = create_engines(db_url)
    try:
        assert upgrade(engines, "0005") == (None, "0005")
        assert "redaction_policies" not in inspect(engines.writer).get_table_names()
        assert upgrade(engines, "0006") == ("0005", "0006")
        assert "redaction_policies" in inspect(engines.writer).get_table_names()
        with _migration_lock(engines) as conn:
            command.downgrade(_alembic_config(conn), "0005")
            conn.commit()
        assert "redaction_policies" not in inspect(engines.writer).get_table_names()
    finally:
        engines.dispose()


# -- the CLI ---------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _sample(folder: Path) -> dict[str, Path]:
    rows = [
        {"email": "ana@example.com", "customer_id": 1001, "card_number": "4111111111111111"},
        {"email": "bo@example.com", "customer_id": 1002, "card_number": "5500005555555559"},
        {"email": "cy@example.com", "customer_id": 1001, "card_number": "340000000000009"},
    ]
    paths = {
        "csv": folder / "sample.csv",
        "parquet": folder / "sample.parquet",
        "json": folder / "sample.json",
        "jsonl": folder / "sample.jsonl",
    }
    paths["csv"].write_text(
        "email,customer_id,card_number,amount\n"
        + "".join(f"{r['email']},{r['customer_id']},{r['card_number']},1.5\n" for r in rows)
    )
    pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
    paths["json"].write_text(json.dumps(rows))
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def test_cli_set_show_list_test_delete(
    sdk_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKYARD_REDACTION_KEY", raising=False)
    args = ["--drop", "email", "--hash", "customer_id", "--mask", "card_number:4"]
    code, out, err = run_cli(capsys, "redaction", "set", "fraud", *args)
    assert code == 0, err
    assert "version 1" in out and "drop email" in out and "mask card_number (keep 4)" in out
    assert "DOCKYARD_REDACTION_KEY is not set" in err

    code, out, _ = run_cli(capsys, "redaction", "show", "fraud", "--json")
    assert code == 0 and json.loads(out)["rules"] == RULES and json.loads(out)["version"] == 1
    code, out, _ = run_cli(capsys, "redaction", "show", "fraud")
    assert code == 0 and "customer_id" in out and "hash" in out and "version 1" in out
    code, out, _ = run_cli(capsys, "redaction", "list")
    assert code == 0 and "fraud" in out and "hash customer_id" in out
    code, out, _ = run_cli(capsys, "redaction", "list", "--json")
    assert [p["endpoint"] for p in json.loads(out)] == ["fraud"]

    files = _sample(sdk_store)
    # Hashing needs the key: the error names the setting, exit code 2.
    code, out, err = run_cli(capsys, "redaction", "test", "fraud", "--file", str(files["csv"]))
    assert code == 2 and "DOCKYARD_REDACTION_KEY" in err and out == ""

    monkeypatch.setenv("DOCKYARD_REDACTION_KEY", SECRET)
    key = RedactionKey(SECRET)
    h1001 = key.hash_one(b"1001")
    for kind, path in files.items():
        code, out, err = run_cli(
            capsys, "redaction", "test", "fraud", "--file", str(path), "--json"
        )
        assert code == 0, (kind, err)
        shown = json.loads(out)
        assert [r["column"] for r in shown["applied"]] == ["email", "customer_id", "card_number"]
        rows = shown["rows"]
        assert len(rows) == 3 and all("email" not in r for r in rows), kind
        assert rows[0]["customer_id"] == rows[2]["customer_id"] == h1001, kind
        assert rows[0]["card_number"] == "************1111", kind
        assert "ana@example.com" not in out and "4111111111111111" not in out

    code, out, _ = run_cli(
        capsys, "redaction", "test", "fraud", "--file", str(files["csv"]), "--rows", "2"
    )
    assert code == 0 and "************1111" in out and h1001 in out
    assert "ana@example.com" not in out and "bo@example.com" not in out
    assert "applied: email: drop, customer_id: hash, card_number: mask (keep 4)" in out
    assert "5500005555555559" not in out and "cy@example.com" not in out  # --rows 2: 2 rows

    # A rule whose column is not in the file is reported, not an error.
    run_cli(capsys, "redaction", "set", "fraud", "--drop", "phone", "--mask", "card_number:2")
    code, out, _ = run_cli(capsys, "redaction", "test", "fraud", "--file", str(files["json"]))
    assert code == 0 and "not in the file (no-op): phone: drop" in out
    assert "ana@example.com" in out  # no longer dropped: the policy was replaced

    code, _, err = run_cli(capsys, "redaction", "test", "fraud", "--file", "nope.csv")
    assert code == 3 and "does not exist" in err
    (sdk_store / "sample.txt").write_text("x")
    code, _, err = run_cli(
        capsys, "redaction", "test", "fraud", "--file", str(sdk_store / "sample.txt")
    )
    assert code == 2 and ".csv, .parquet, .json" in err
    code, _, err = run_cli(capsys, "redaction", "set", "fraud", "--drop", "a", "--hash", "A")
    assert code == 2 and "two redaction rules" in err
    code, _, err = run_cli(capsys, "redaction", "set", "fraud")
    assert code == 2 and "at least one rule" in err

    code, out, _ = run_cli(capsys, "redaction", "delete", "fraud")
    assert code == 0 and "deleted" in out
    code, _, err = run_cli(capsys, "redaction", "show", "fraud")
    assert code == 3 and "no redaction policy" in err


def test_cli_viewer_is_refused(
    sdk_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_USER", "boss")
    assert run_cli(capsys, "users", "create", "boss", "--role", "admin")[0] == 0
    assert run_cli(capsys, "users", "create", "vic", "--role", "viewer")[0] == 0
    assert run_cli(capsys, "redaction", "set", "fraud", "--drop", "email")[0] == 0
    monkeypatch.setenv("DOCKYARD_USER", "vic")
    code, _, err = run_cli(capsys, "redaction", "set", "fraud", "--hash", "email")
    assert code == 5 and "'vic' lacks permission endpoint:deploy" in err
    code, _, err = run_cli(capsys, "redaction", "delete", "fraud")
    assert code == 5
    code, out, _ = run_cli(capsys, "redaction", "show", "fraud", "--json")
    assert code == 0 and json.loads(out)["rules"] == [{"column": "email", "action": "drop"}]
