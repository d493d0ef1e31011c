"""`dockyard models ...` end to end through `main(argv)`, and the demo's registry steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dockyard as dy
from dockyard.cli.main import main
from dockyard.client.client import Client


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _frame(n: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"amount": rng.normal(0.0, 1.0, n), "age": rng.normal(0.0, 1.0, n)})
    noise = rng.normal(0.0, 0.5, n)
    x["is_fraud"] = (x["amount"] + 0.5 * x["age"] + noise > 0).astype(int)
    return x


def _log(model: Any, x: Any, name: str) -> str:
    with dy.start_run(experiment="cli-models", name=name) as run:
        dy.log_params({"model": name})
        dy.log_input(x, name="train", context="training")
        dy.log_model(model, "model", input_example=x.head(3))
    return run.run_id


@pytest.fixture
def runs(sdk_store: Path) -> dict[str, str]:
    """Two logged models: a good one and a useless one (fitted on a shuffled label)."""
    from sklearn.linear_model import LogisticRegression

    train = _frame(400, 0)
    x, y = train[["amount", "age"]], train["is_fraud"]
    good = LogisticRegression().fit(x, y)
    bad = LogisticRegression().fit(x, y.sample(frac=1.0, random_state=1).to_numpy())
    return {"good": _log(good, x, "good"), "bad": _log(bad, x, "bad")}


@pytest.fixture
def holdout(tmp_path: Path) -> dict[str, Path]:
    frame = _frame(300, 7)
    paths = {"parquet": tmp_path / "holdout.parquet", "csv": tmp_path / "holdout.csv"}
    frame.to_parquet(paths["parquet"])
    frame.to_csv(paths["csv"], index=False)
    return paths


def test_register_list_show_and_aliases(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, "models", "register", f"runs:/{runs['good']}/model", "-n", "fraud"
    )
    assert code == 0 and "registered fraud version 1" in out and "candidate" in out
    code, out, _ = run_cli(
        capsys, "models", "register", f"runs:/{runs['bad']}/model", "--name", "fraud", "--json"
    )
    assert code == 0 and json.loads(out)["version"] == 2
    code, out, _ = run_cli(capsys, "models", "list")
    assert code == 0 and "fraud" in out
    [item] = json.loads(run_cli(capsys, "models", "list", "--json")[1])["items"]
    assert item["name"] == "fraud" and item["latest_version"] == 2

    assert run_cli(capsys, "models", "alias", "set", "fraud", "champion", "1")[0] == 0
    assert run_cli(capsys, "models", "alias", "set", "fraud", "champion", "2")[0] == 0
    code, out, _ = run_cli(capsys, "models", "show", "fraud@champion", "--json")
    assert code == 0 and json.loads(out)["version"] == 2
    code, out, _ = run_cli(capsys, "models", "show", "fraud")
    assert code == 0 and "champion" in out and "Versions" in out
    code, out, _ = run_cli(capsys, "models", "show", "fraud/1")
    assert code == 0 and "sklearn" in out and "amount" in out and runs["good"] in out
    code, out, _ = run_cli(capsys, "models", "alias", "history", "fraud", "--json")
    moves = [(e["from_version"], e["to_version"]) for e in json.loads(out)]
    assert moves == [(None, 1), (1, 2)]
    assert run_cli(capsys, "models", "alias", "delete", "fraud", "champion")[0] == 0
    code, out, _ = run_cli(capsys, "models", "alias", "history", "fraud", "-a", "champion")
    assert code == 0 and "deleted" in out
    code, _, err = run_cli(capsys, "models", "show", "fraud@champion")
    assert code == 3 and err.startswith("error: ")


def test_validate_transition_retire_lineage_download(
    runs: dict[str, str],
    holdout: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = Client()
    client.create_model_version("fraud", f"runs:/{runs['good']}/model")
    client.create_model_version("fraud", f"runs:/{runs['bad']}/model")

    # A candidate cannot be approved before it passed a gate.
    code, _, err = run_cli(capsys, "models", "transition", "fraud/1", "approved")
    assert code == 4 and "gate" in err

    # Version 1, first model: no champion yet, the relative check passes with a note.
    code, out, _ = run_cli(
        capsys,
        "models",
        "validate",
        "fraud/1",
        "--data",
        str(holdout["parquet"]),
        "--label",
        "is_fraud",
        "--require",
        "roc_auc>=0.80",
        "--require",
        "roc_auc>=champion-0.01",
    )
    assert code == 0, out
    assert "PASS" in out and "FAIL" not in out and "roc_auc>=0.80" in out
    code, out, _ = run_cli(capsys, "models", "transition", "fraud/1", "approved")
    assert code == 0 and "candidate -> approved" in out
    assert run_cli(capsys, "models", "alias", "set", "fraud", "champion", "1")[0] == 0

    # Version 2 is much worse than the champion: the gate fails, exit code 1.
    code, out, _ = run_cli(
        capsys,
        "models",
        "validate",
        "fraud/2",
        "-d",
        str(holdout["csv"]),
        "-l",
        "is_fraud",
        "--require",
        "roc_auc>=champion-0.01",
        "--json",
    )
    verdict = json.loads(out)
    assert code == 1 and verdict["passed"] is False and verdict["against_version"] == 1
    assert [c["passed"] for c in verdict["checks"]] == [False]
    code, _, err = run_cli(capsys, "models", "transition", "fraud/2", "approved")
    assert code == 4
    code, _, err = run_cli(capsys, "models", "transition", "fraud/2", "approved", "--override-gate")
    assert code == 2 and "reason" in err
    code, out, _ = run_cli(
        capsys,
        "models",
        "transition",
        "fraud/2",
        "approved",
        "--override-gate",
        "--reason",
        "accepted by the risk team",
    )
    assert code == 0 and "approved" in out

    # Illegal moves name the allowed ones.
    code, _, err = run_cli(capsys, "models", "transition", "fraud/1", "candidate")
    assert code in (2, 4) and "production" in err

    # Retire: the champion's version is refused; version 2 retires with a replacement.
    code, _, err = run_cli(capsys, "models", "retire", "fraud/1", "--reason", "old")
    assert code == 4 and "champion" in err
    code, out, _ = run_cli(
        capsys, "models", "retire", "fraud/2", "--reason", "worse", "--replacement", "1"
    )
    assert code == 0 and "retired" in out and "replaced by version 1" in out
    code, out, _ = run_cli(capsys, "models", "show", "fraud/2", "--json")
    shown = json.loads(out)
    assert shown["status"] == "retired" and shown["replacement_version"] == 1
    code, _, err = run_cli(capsys, "models", "alias", "set", "fraud", "challenger", "2")
    assert code == 4 and "retired" in err

    # Lineage: a tree for people, the graph for scripts.
    code, out, _ = run_cli(capsys, "models", "lineage", "fraud@champion")
    assert code == 0 and runs["good"] in out and "train" in out
    code, out, _ = run_cli(capsys, "models", "lineage", "fraud/1", "--json")
    graph = json.loads(out)
    kinds = {n["kind"] for n in graph["nodes"]}
    assert {"model_version", "run", "dataset"} <= kinds and graph["edges"]

    # Download: the package, verified.
    dest = tmp_path / "dl"
    code, out, _ = run_cli(capsys, "models", "download", "fraud/1", "--dest", str(dest))
    assert code == 0
    folder = Path(out.strip())
    assert (folder / "manifest.json").is_file()
    assert dy.load_model(folder).predict(_frame(5, 3)[["amount", "age"]]).shape == (5,)


def test_register_a_local_package_folder(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.linear_model import LogisticRegression

    from dockyard.registry.packaging import save_model

    train = _frame(200, 0)
    model = LogisticRegression().fit(train[["amount", "age"]], train["is_fraud"])
    save_model(model, tmp_path / "pkg", input_example=train[["amount", "age"]].head(2))
    code, out, _ = run_cli(capsys, "models", "register", str(tmp_path / "pkg"), "-n", "local")
    assert code == 0 and "registered local version 1" in out and "package:" in out
    code, out, _ = run_cli(capsys, "models", "show", "local", "--json")
    shown = json.loads(out)
    assert shown["model"]["name"] == "local" and shown["versions"][0]["run_id"] is None
    (tmp_path / "pkg" / "model.skops").write_bytes(b"tampered")
    code, _, err = run_cli(capsys, "models", "register", str(tmp_path / "pkg"), "-n", "local")
    assert code == 7 and "model.skops" in err


@pytest.mark.parametrize(
    ("args", "exit_code", "needle"),
    [
        (["models", "register", "file:///etc", "-n", "fraud"], 2, "runs:/"),
        (["models", "register", "/etc/passwd", "-n", "fraud"], 2, "runs:/"),
        (["models", "register", "../x", "-n", "fraud"], 2, "runs:/"),
        (["models", "register", "//proc/self/root", "-n", "fraud"], 2, "runs:/"),
        (["models", "register", "http://example.com/m", "-n", "fraud"], 2, "runs:/"),
        (["models", "register", "runs:/" + "0" * 32 + "/model", "-n", "fraud"], 3, "run"),
        (["models", "register", "runs:/{good}/model", "-n", "bad/name"], 2, "model name"),
        (["models", "show", "missing"], 3, "missing"),
        (["models", "show", "missing/1"], 3, "missing"),
        (["models", "show", "fraud/0"], 2, "version"),
        (["models", "show", "fraud/x/y"], 2, "accepted forms"),
        (["models", "transition", "fraud", "approved"], 2, "fraud/1"),
        (["models", "transition", "fraud/9", "approved"], 3, "9"),
        (["models", "transition", "fraud/1", "shipped"], 2, "shipped"),
        (["models", "retire", "fraud/1", "--reason", ""], 2, "reason"),
        (["models", "retire", "fraud/1", "--reason", "x", "--replacement", "1"], 2, "replace"),
        (["models", "alias", "set", "fraud", "production", "1"], 2, "reserved"),
        (["models", "alias", "set", "fraud", "Bad Alias", "1"], 2, "alias"),
        (["models", "alias", "delete", "fraud", "nope"], 3, "nope"),
        (["models", "validate", "fraud/1", "-d", "{tmp}/none.parquet", "-l", "y"], 3, "none"),
        (["models", "validate", "fraud/1", "-d", "{tmp}/data.txt", "-l", "y"], 2, ".csv"),
        (
            "models validate fraud/1 -d {tmp}/holdout.csv -l is_fraud --require auc>=0.8".split(),
            2,
            "roc_auc",
        ),
        (
            "models validate fraud/1 -d {tmp}/holdout.csv -l nope --require roc_auc>=0.8".split(),
            2,
            "nope",
        ),
        (["models", "lineage", "fraud/7"], 3, "7"),
        (["models", "download", "fraud/7", "--dest", "{tmp}/x"], 3, "7"),
    ],
)
def test_mistakes_are_one_line_errors_with_exit_codes(
    runs: dict[str, str],
    holdout: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    exit_code: int,
    needle: str,
) -> None:
    client = Client()
    client.create_model_version("fraud", f"runs:/{runs['good']}/model")
    (tmp_path / "data.txt").write_text("a,b\n1,2\n")
    args = [a.format(tmp=tmp_path, good=runs["good"]) for a in args]
    before = client.list_audit_events(limit=10_000)
    code, _out, err = run_cli(capsys, *args)
    assert client.list_audit_events(limit=10_000) == before  # nothing was written
    assert code == exit_code, err
    assert err.startswith("error: ") and needle in err, err
    assert "Traceback" not in err and err.count("\n") <= 3


def test_models_help_is_light(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom dockyard.cli.main import main\nimport contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for cmd in (['models', '--help'], ['models', 'validate', '--help']):\n"
        "        main(cmd)\n"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DOCKYARD_HOME": str(tmp_path)},
    ).stdout
    assert not {"pandas", "sklearn", "numpy", "sqlalchemy", "skops"} & set(out.split())


@pytest.mark.slow
def test_the_demo_registers_gates_and_promotes_twice(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dockyard.demo import CHAMPION_ALIAS, MODEL_NAME, run_demo

    first = run_demo(rows=2_000, seed=0, folds=2)
    registry = first[0]["registry"]
    assert registry["version"] == 1 and registry["passed"] and registry["previous_champion"] is None
    client = Client()
    assert client.get_registered_model(MODEL_NAME).aliases == {CHAMPION_ALIAS: 1}
    # The champion was deployed behind the endpoint and served real traffic.
    served = first[0]["serving"]
    assert served["answered"] == served["sent"] > 0 and set(served["by_variant"]) == {"fraud-1"}
    assert client.get_model_version(MODEL_NAME, 1).status == "production"
    # Then drifted traffic, late labels and a monitor run that catches the drift.
    watched = served["monitoring"]
    assert watched["dataset_drift"] and "amount" in watched["drifted"]
    assert 0 < watched["labels"] < 1_200 and Path(watched["report"]).is_file()
    assert "<svg" in Path(watched["report"]).read_text()

    second = run_demo(rows=2_000, seed=0, folds=2)
    registry = second[0]["registry"]
    assert registry["version"] == 2 and registry["previous_champion"] == 1
    assert registry["passed"]  # same data and seed: equal to the champion, within 0.01
    v2 = client.get_model_version(MODEL_NAME, 2)
    assert v2.validation is not None and v2.validation["against_version"] == 1
    assert client.get_registered_model(MODEL_NAME).aliases == {CHAMPION_ALIAS: 2}
    # The new champion went out as a canary; the controller decided on the logged traffic.
    served = second[0]["serving"]
    assert served["answered"] == served["sent"]
    actions = [action for action, _ in served["decisions"]]
    assert actions in (["advance", "promote"], ["rollback"], ["advance", "rollback"]), actions
    if actions[-1] == "promote":
        assert client.get_model_version(MODEL_NAME, 2).status == "production"
        assert client.get_model_version(MODEL_NAME, 1).status == "deprecated"
    out = capsys.readouterr().out
    assert "champion" in out and "version 2" in out and "Serving: endpoint 'fraud'" in out
    champion = dy.load_model(f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}")
    assert champion.manifest is not None
