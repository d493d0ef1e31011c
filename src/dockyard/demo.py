"""`dockyard demo`: the main job on the embedded default store.

It draws a deterministic synthetic fraud dataset, trains a few scikit-learn models with
different params (per-fold cross-validation metrics, per-epoch curves for the boosted model),
tracks each as a child run of one parent run — params, metrics, the model as a package (skops,
with its signature and an input example), the datasets as inputs — and prints a comparison
table. Then the registry: the best run's model becomes a new version of the registered model
``fraud``, is gated against the current ``champion`` on the holdout split, and, when the gate
passes, is approved and becomes the champion (a failed gate rejects it and the champion stays).
Run it twice: the second run registers version 2 and gates it against version 1. Later lifecycle
stages (serving, monitoring) extend this same demo.

``dockyard demo --auth`` (:mod:`dockyard._demo_team`) runs the same training and registry steps
through a real server with authentication on, as a team would: a data scientist trains and
registers, and an approver signs the version off (four eyes) before it becomes the champion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The registered model the demo registers into, its champion alias and its gate.
MODEL_NAME = "fraud"
CHAMPION_ALIAS = "champion"
GATE_REQUIREMENTS: tuple[str, ...] = ("roc_auc>=0.80", "roc_auc>=champion-0.01")


@dataclass
class Candidate:
    name: str
    family: str
    params: dict[str, Any]
    build: Any = field(repr=False)


def _candidates(seed: int) -> list[Candidate]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    def logreg(c: float) -> Any:
        return LogisticRegression(C=c, max_iter=500, class_weight="balanced")

    def forest(n: int, depth: int) -> Any:
        return RandomForestClassifier(
            n_estimators=n, max_depth=depth, min_samples_leaf=5, n_jobs=-1, random_state=seed
        )

    def boosted(lr: float, leaves: int) -> Any:
        return HistGradientBoostingClassifier(
            learning_rate=lr,
            max_leaf_nodes=leaves,
            max_iter=150,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=15,
            random_state=seed,
        )

    return [
        Candidate("logreg-c0.1", "logistic_regression", {"C": 0.1}, lambda: logreg(0.1)),
        Candidate("logreg-c1", "logistic_regression", {"C": 1.0}, lambda: logreg(1.0)),
        Candidate(
            "forest-d6",
            "random_forest",
            {"n_estimators": 100, "max_depth": 6},
            lambda: forest(100, 6),
        ),
        Candidate(
            "forest-d12",
            "random_forest",
            {"n_estimators": 100, "max_depth": 12},
            lambda: forest(100, 12),
        ),
        Candidate(
            "boosted-lr0.1",
            "hist_gradient_boosting",
            {"learning_rate": 0.1, "max_leaf_nodes": 31},
            lambda: boosted(0.1, 31),
        ),
    ]


def _pipeline(model: Any, categorical: list[str], numeric: list[str]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ]
    )
    return Pipeline([("features", pre), ("model", model)])


def _scores(y_true: Any, proba: Any) -> dict[str, float]:
    from sklearn import metrics as m

    pred = (proba >= 0.5).astype(int)
    return {
        "roc_auc": float(m.roc_auc_score(y_true, proba)),
        "average_precision": float(m.average_precision_score(y_true, proba)),
        "log_loss": float(m.log_loss(y_true, proba, labels=[0, 1])),
        "accuracy": float(m.accuracy_score(y_true, pred)),
        "precision": float(m.precision_score(y_true, pred, zero_division=0)),
        "recall": float(m.recall_score(y_true, pred, zero_division=0)),
        "f1": float(m.f1_score(y_true, pred, zero_division=0)),
    }


def run_demo(
    rows: int = 20_000,
    seed: int = 0,
    experiment: str = "fraud-demo",
    folds: int = 3,
    serve: bool = True,
) -> list[dict[str, Any]]:
    """Train, track, compare, register, then deploy and serve the champion (a canary when it
    replaces an earlier one); returns one summary dict per model (best first)."""
    import dockyard as dy

    trained = train_and_compare(rows=rows, seed=seed, experiment=experiment, folds=folds)
    registry = register_and_gate(
        dy.get_client(), trained.best, trained.holdout, label=trained.label
    )
    trained.best["registry"] = registry
    if serve:
        from dockyard._demo_serving import serve_and_roll_out

        features = trained.holdout.drop(columns=[trained.label])
        trained.best["serving"] = serve_and_roll_out(
            dy.get_client().settings, registry, features, seed=seed
        )
    return trained.results


@dataclass
class Trained:
    """What :func:`train_and_compare` leaves for the registry steps."""

    #: One summary dict per model, best first (``run_id``, ``name``, test scores, ...).
    results: list[dict[str, Any]]
    #: The summary of the best model (one of ``results``).
    best: dict[str, Any]
    #: The holdout rows (features and label) the validation gate scores on.
    holdout: Any = field(repr=False)
    label: str
    parent_run_id: str


def train_and_compare(
    rows: int = 20_000, seed: int = 0, experiment: str = "fraud-demo", folds: int = 3
) -> Trained:
    """Draw the data, train and track every candidate through the fluent API (so through
    whatever client :func:`dockyard.get_client` returns) and print the comparison table."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from sklearn.model_selection import StratifiedKFold

    import dockyard as dy
    from dockyard.cli._output import print_table
    from dockyard.core.errors import InvalidInput
    from dockyard.data.synthetic import (
        CATEGORICAL_COLUMNS,
        LABEL_COLUMN,
        NUMERIC_COLUMNS,
        make_fraud_transactions,
        train_test_split_by_time,
    )

    if rows < 2_000:
        raise InvalidInput(f"--rows must be at least 2000 to train on, got {rows}")
    console = Console(stderr=True)
    console.print(f"[bold]Dockyard demo[/bold]: {rows:,} synthetic transactions, seed {seed}")
    client = dy.get_client()
    console.print(f"tracking to {client!r}")
    df = make_fraud_transactions(rows, random_state=seed)
    train, test = train_test_split_by_time(df, test_fraction=0.2)
    cat, num = list(CATEGORICAL_COLUMNS), list(NUMERIC_COLUMNS)
    x_train, y_train = train[cat + num], train[LABEL_COLUMN].to_numpy()
    x_test, y_test = test[cat + num], test[LABEL_COLUMN].to_numpy()

    results: list[dict[str, Any]] = []
    candidates = _candidates(seed)
    with (
        dy.start_run(experiment=experiment, name=f"demo-seed{seed}") as parent,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        dy.log_params({"rows": rows, "seed": seed, "folds": folds, "drift": 0.0})
        dy.log_input(train, name="fraud-transactions", context="training", source="synthetic")
        dy.log_input(test, name="fraud-transactions", context="test", source="synthetic")
        task = progress.add_task("training", total=len(candidates))
        for cand in candidates:
            progress.update(task, description=f"training {cand.name}")
            with dy.start_run(name=cand.name, nested=True) as child:
                dy.set_tags({"model_family": cand.family, "demo": "true"})
                dy.log_params({"model": cand.family, **cand.params})
                dy.log_input(
                    train, name="fraud-transactions", context="training", source="synthetic"
                )
                # Per-fold cross-validation on the training window.
                skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
                fold_aucs = []
                for fold, (tr, va) in enumerate(skf.split(x_train, y_train)):
                    est = _pipeline(cand.build(), cat, num)
                    est.fit(x_train.iloc[tr], y_train[tr])
                    s = _scores(y_train[va], est.predict_proba(x_train.iloc[va])[:, 1])
                    fold_aucs.append(s["roc_auc"])
                    dy.log_metrics(
                        {"cv_roc_auc": s["roc_auc"], "cv_log_loss": s["log_loss"]}, step=fold
                    )
                # Final fit on the whole training window, scored on the later test window.
                started = time.perf_counter()
                est = _pipeline(cand.build(), cat, num)
                est.fit(x_train, y_train)
                fit_seconds = time.perf_counter() - started
                model = est.named_steps["model"]
                if hasattr(model, "validation_score_"):
                    # Per-epoch curves of the boosted model (scores are negative log loss).
                    for epoch, (tr_s, va_s) in enumerate(
                        zip(model.train_score_, model.validation_score_, strict=True)
                    ):
                        dy.log_metrics(
                            {"epoch_train_loss": -float(tr_s), "epoch_val_loss": -float(va_s)},
                            step=epoch,
                        )
                test_scores = _scores(y_test, est.predict_proba(x_test)[:, 1])
                dy.log_metrics({f"test_{k}": v for k, v in test_scores.items()})
                dy.log_metrics(
                    {"cv_roc_auc_mean": sum(fold_aucs) / len(fold_aucs), "fit_seconds": fit_seconds}
                )
                # A skops package with the signature inferred from an input example.
                dy.log_model(est, "model", input_example=x_train.head(5), task="classification")
                results.append(
                    {
                        "run_id": child.run_id,
                        "name": cand.name,
                        **test_scores,
                        "cv_roc_auc_mean": sum(fold_aucs) / len(fold_aucs),
                        "fit_seconds": fit_seconds,
                    }
                )
            progress.advance(task)
        best = max(results, key=lambda r: r["roc_auc"])
        dy.set_tags({"best_run_id": best["run_id"], "best_model": best["name"]})
        dy.log_metrics({"best_test_roc_auc": best["roc_auc"]})

    results.sort(key=lambda r: r["roc_auc"], reverse=True)
    print_table(
        f"Experiment {experiment!r}: models on the held-out (later) 20 % of transactions",
        ["model", "AUC", "AP", "CV AUC", "F1", "fit s", "run id"],
        [
            (
                ("* " if r is results[0] else "  ") + r["name"],
                r["roc_auc"],
                r["average_precision"],
                r["cv_roc_auc_mean"],
                r["f1"],
                r["fit_seconds"],
                r["run_id"],
            )
            for r in results
        ],
        caption=f"AUC: test ROC AUC; AP: average precision; CV AUC: mean over {folds} folds.\n"
        f"Parent run {parent.run_id}. Next: dockyard runs list -e {experiment}",
    )
    holdout = test[[*cat, *num, LABEL_COLUMN]]
    return Trained(results, best, holdout, LABEL_COLUMN, parent.run_id)


#: Adds one row to the registry table: step, who took it (a user name, or "") and what happened.
AddRow = Callable[[str, str, str], None]


@dataclass
class Signoff:
    """Who signs a version off when the author may not (``dockyard demo --auth``).

    The author's client (the one :func:`register_and_gate` gets) registers, validates and
    moves the alias; ``approver`` -- another user's client, with ``model:approve`` -- moves the
    version to approved (or rejected), after ``four_eyes(version, add_row)`` has taken the
    approval steps and added their rows to the table.
    """

    author: str
    approver_name: str
    approver: Any = field(repr=False)
    four_eyes: Callable[[int, AddRow], None] = field(repr=False)


def register_and_gate(
    client: Any,
    best: dict[str, Any],
    holdout: Any,
    *,
    label: str,
    signoff: Signoff | None = None,
) -> dict[str, Any]:
    """Register the best run's model, gate it against the champion, approve and alias it.

    Without ``signoff`` the client does every step (the plain demo, one local user); with it,
    see :class:`Signoff`: the table then says who took each step. Returns what happened:
    version, previous champion, verdict, final status and alias.
    """
    from dockyard.cli._output import print_table
    from dockyard.core.errors import NotFound

    author = signoff.author if signoff else ""
    approver = signoff.approver if signoff else client
    approver_name = signoff.approver_name if signoff else ""
    try:
        previous = client.get_registered_model(MODEL_NAME).aliases.get(CHAMPION_ALIAS)
    except NotFound:
        previous = None
    mv = client.create_model_version(
        MODEL_NAME,
        f"runs:/{best['run_id']}/model",
        description=f"demo: best of the run's models ({best['name']})",
    )
    verdict = client.validate(
        MODEL_NAME,
        mv.version,
        holdout,
        label=label,
        against=CHAMPION_ALIAS,
        requirements=list(GATE_REQUIREMENTS),
    )
    champion_text = f"{CHAMPION_ALIAS} = version {previous}" if previous else "no champion yet"
    rows: list[tuple[str, str, str]] = []

    def add(step: str, who: str, what: str) -> None:
        rows.append((step, who, what))

    add(
        "register",
        author,
        f"{MODEL_NAME} version {mv.version} from {best['name']} ({best['run_id']})",
    )
    add(
        "gate",
        author,
        f"{'PASSED' if verdict.passed else 'FAILED'} on {verdict.num_rows:,} holdout rows "
        f"vs {champion_text}",
    )
    for check in verdict.checks:
        result = "PASS" if check.get("passed") else "FAIL"
        add(
            "  check",
            "",
            f"{result}  {check.get('requirement')}: candidate {_num(check.get('candidate'))}, "
            f"threshold {_num(check.get('threshold'))}"
            + (f" ({check['note']})" if check.get("note") else ""),
        )
    if verdict.passed:
        if signoff is not None:
            signoff.four_eyes(mv.version, add)
        approver.transition(MODEL_NAME, mv.version, "approved", reason="demo: gate passed")
        client.set_alias(MODEL_NAME, CHAMPION_ALIAS, mv.version)
        final = client.get_model_version(MODEL_NAME, mv.version)
    else:
        final = approver.transition(
            MODEL_NAME, mv.version, "rejected", reason="demo: validation gate failed"
        )
    add("status", approver_name, f"candidate -> {final.status}")
    if verdict.passed:
        moved = f" (was version {previous})" if previous else ""
        add("alias", author, f"{MODEL_NAME}@{CHAMPION_ALIAS} -> version {mv.version}{moved}")
    else:
        add("alias", "", f"{MODEL_NAME}@{CHAMPION_ALIAS} unchanged ({previous})")
    print_table(
        f"Registry: model {MODEL_NAME!r}",
        ["step", "by", "what happened"] if signoff else ["step", "what happened"],
        rows if signoff else [(step, what) for step, _, what in rows],
        caption=f"Next: dockyard models show {MODEL_NAME}; dockyard models lineage "
        f"{MODEL_NAME}/{mv.version}; dy.load_model('models:/{MODEL_NAME}@{CHAMPION_ALIAS}')",
    )
    return {
        "name": MODEL_NAME,
        "version": mv.version,
        "previous_champion": previous,
        "passed": verdict.passed,
        "status": final.status,
        "champion": mv.version if verdict.passed else previous,
    }


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)
