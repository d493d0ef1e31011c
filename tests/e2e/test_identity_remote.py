"""Identity management against a real server: the CLI with DOCKYARD_TRACKING_URI and a token.

A server process with auth on (``dockyard.server.app.run``, as ``dockyard server`` starts it),
its store SQLite or PostgreSQL; the CLI runs as its own process (``python -m dockyard.cli``)
with only ``DOCKYARD_TRACKING_URI``, ``DOCKYARD_TRACKING_TOKEN`` and a client home of its own:
the admin creates a user and a token remotely, that user manages their own tokens, and nobody
needs the database. The client's home never gets a store, and no secret reaches the server's
terminal or log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.client.client import Client
from dockyard.core.config import load_settings
from dockyard.core.errors import Unauthenticated

from ._server import SRC, running_server

pytestmark = pytest.mark.e2e
ADMIN_TOKEN = "dy_e2e-identity-admin-" + "w" * 40


def _cli(url: str, token: str, home: Path, *args: str) -> tuple[int, str, str]:
    """``dockyard <args>`` in its own process, talking to the server at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_HOME=str(home),
        DOCKYARD_TRACKING_URI=url,
        DOCKYARD_TRACKING_TOKEN=token,
        DOCKYARD_USER="nobody-local",  # must not matter: the token decides who acts
    )
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-m", "dockyard.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def test_cli_manages_users_and_tokens_through_the_server(tmp_path: Path, db_url: str) -> None:
    client_home = tmp_path / "laptop"
    server_env = {"DOCKYARD_ADMIN_TOKEN": ADMIN_TOKEN, "DOCKYARD_DB_URL": db_url}
    with running_server(tmp_path / "server", DOCKYARD_AUTH="on", **server_env) as server:
        url = server.url

        def admin(*args: str) -> tuple[int, str, str]:
            return _cli(url, ADMIN_TOKEN, client_home, *args)

        code, out, err = admin("whoami")
        assert (code, out.strip()) == (0, "admin (user, bootstrap administrator); roles: admin"), (
            err
        )
        code, out, err = admin("users", "create", "ana", "--role", "editor", "--json")
        assert code == 0 and json.loads(out)["name"] == "ana", err
        code, out, err = admin("grants", "add", "ana", "approver", "--on", "registered_model",
                               "--id", "fraud")  # fmt: skip
        assert code == 0 and "granted approver to ana on registered_model fraud" in out, err
        code, out, err = admin("tokens", "create", "ana", "--name", "laptop")
        assert code == 0, err
        secret = out.strip().splitlines()[-1]
        assert secret.startswith("dy_") and "shown only this once" in out
        code, out, _ = admin("users", "list", "--json")
        roles = {u["name"]: sorted(u["roles"]) for u in json.loads(out)}
        assert roles == {
            "admin": ["admin"],
            "ana": ["approver on registered_model fraud", "editor"],
        }

        def ana(*args: str) -> tuple[int, str, str]:
            return _cli(url, secret, client_home, *args)

        code, out, _ = ana("whoami", "--json")
        me = json.loads(out)
        assert (me["name"], me["admin"]) == ("ana", False)
        assert sorted(me["roles"]) == ["approver on registered_model fraud", "editor"]
        # Her own token, for herself (no user named: yours), listed and revoked by her.
        code, out, err = ana("tokens", "create", "--name", "ci", "--expires-in-days", "7", "--json")
        assert code == 0, err
        ci = json.loads(out)
        assert ci["user"] == "ana" and ci["token"].startswith("dy_")
        code, out, _ = ana("tokens", "list", "--json")
        assert {t["user"] for t in json.loads(out)} == {"ana"} and len(json.loads(out)) == 2
        assert secret not in out and ci["token"] not in out
        code, out, err = ana("tokens", "revoke", ci["token_id"])
        assert code == 0 and f"revoked {ci['token_id']} of ana" in out, err
        # What only an admin may do: exit 5 (permission), one line naming the permission.
        for args in (
            ("users", "list"),
            ("users", "create", "eve", "--role", "admin"),
            ("grants", "add", "ana", "admin"),
            ("tokens", "create", "admin"),
        ):
            code, _, err = ana(*args)
            assert code == 5 and "'ana' lacks permission admin globally" in err, (args, err)
        code, out, _ = admin("tokens", "list", "--user", "admin", "--json")
        [admin_tok] = json.loads(out)
        code, _, err = ana("tokens", "revoke", admin_tok["token_id"])
        assert code == 3 and "does not exist" in err  # someone else's token: not found

        # The SDK with her token works; disabled, it stops at once.
        sdk = Client(url, token=secret, settings=load_settings(environ={}))
        assert sdk.create_experiment("ana-exp").name == "ana-exp"
        code, out, _ = admin("users", "disable", "ana")
        assert code == 0 and "disabled ana" in out
        with pytest.raises(Unauthenticated, match="disabled"):
            sdk.list_experiments()
        code, _, err = ana("whoami")
        assert code == 5 and "disabled" in err

        # Everything went to the server's store, audited with who did it.
        code, out, _ = admin("audit", "list", "--json")
        events = [(e["actor"], e["action"]) for e in json.loads(out)["items"]]
        for expected in [
            ("admin", "user.create"),
            ("admin", "grant.add"),
            ("admin", "token.create"),
            ("ana", "token.create"),
            ("ana", "token.revoke"),
            ("admin", "user.disable"),
        ]:
            assert expected in events, expected
        log = server.log.read_text()

    assert not (client_home / "dockyard.db").exists()  # the laptop never opened a store
    for s in (ADMIN_TOKEN, secret, ci["token"]):
        assert s not in log
