"""Monitoring reports: offline HTML (escaping, plots, no external resources), JSON, Rich, files.

Runs are built from the real profile + drift code on synthetic data, so the report is tested
against the shapes the monitor service stores.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

from dockyard.core.errors import InvalidInput  # noqa: E402
from dockyard.monitoring import drift as drift_mod  # noqa: E402
from dockyard.monitoring import report  # noqa: E402
from dockyard.monitoring.drift import drift_report  # noqa: E402
from dockyard.monitoring.profile import profile_table  # noqa: E402
from dockyard.monitoring.report import (  # noqa: E402
    render_html,
    render_json,
    render_rich,
    report_data,
    write_report,
)

ROWS = 5_000
HOUR_MS = 3_600_000
T0 = 1_764_100_000_000
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SUMMARY_TEXTS = [
    "fraud",
    "default",
    "model fraud/3 training data",
    "2025-11-25T19:46:40Z",
    "2025-11-25T20:46:40Z",
    "5 of 25",
    "20.0%",
    "50%",
    "accuracy",
    "estimate",
    "cbpe",
    "no significant difference",
    "debug_flag",
    "null",
    "out_of_range",
]


def make_run(
    *,
    rows: int = ROWS,
    n_numeric: int = 23,
    shifted: int = 4,
    seed: int = 0,
    rename: dict[str, str] | None = None,
    hostile_category: str | None = None,
) -> dict[str, Any]:
    """A stored-run-shaped mapping: 25 features (23 numeric, a categorical, a boolean) of
    which ``shifted`` numeric columns and the categorical one drift, plus a prediction."""
    rng = np.random.default_rng(seed)
    rename = rename or {}
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(n_numeric):
        name = rename.get(f"f{i}", f"f{i}")
        ref[name] = rng.normal(size=rows)
        cur[name] = rng.normal(loc=1.0 if i < shifted else 0.0, size=rows)
    first = hostile_category or "a"
    ref["city"] = rng.choice([first, "b", "c", "d"], size=rows)
    cur["city"] = rng.choice([first, "b", "c", "e"], size=rows)
    ref["flag"] = rng.random(rows) < 0.3
    cur["flag"] = rng.random(rows) < 0.3
    ref["score"] = rng.random(rows)
    cur["score"] = rng.random(rows) ** 0.5
    profile = profile_table(pa.table(ref))
    result = drift_report(profile, pa.table(cur), prediction="score").to_dict()
    return {
        "id": "0b6f3a52-4a4e-4a53-9b1c-7b2f5d1e9a10",
        "endpoint": "fraud",
        "monitor": "default",
        "created": T0 + HOUR_MS,
        "window": {"start_ms": T0, "end_ms": T0 + HOUR_MS, "rows": rows, "spec": "1h"},
        "reference": {"description": "model fraud/3 training data", "rows": rows},
        "drift": result,
        "quality": {
            "rows": rows,
            "columns": {"f5": {"missing": 3, "out_of_range": 1}, "city": {"missing": 0}},
            "missing_columns": [],
            "extra_columns": ["debug_flag"],
            "issues": [
                {
                    "column": "f5",
                    "check": "missing",
                    "count": 3,
                    "rate": 0.0006,
                    "examples": [None, "n/a"],
                },
                {"column": "f6", "check": "out_of_range", "count": 1, "rate": 0.0002,
                 "examples": [1e9]},
            ],
            "n_issues": 2,
        },
        "performance": {
            "task": "classification",
            "variants": {
                "main": {"rows": rows, "labeled": 400, "coverage": 0.08, "shadow": False,
                         "metrics": {"accuracy": 0.91, "f1": 0.77}, "estimated": None},
                "challenger": {"rows": 500, "labeled": 0, "coverage": 0.0, "shadow": True,
                               "metrics": None,
                               "estimated": {"estimated": True, "method": "cbpe",
                                             "accuracy": 0.89, "f1": float("nan")}},
            },
            "comparison": {"metric": "accuracy", "a": "main", "b": "challenger",
                           "difference": 0.02, "ci": [-0.01, 0.05], "p_value": 0.2,
                           "significant": False, "verdict": "no significant difference",
                           "needed_per_variant": 3000},
        },
        "alerts": [{"event": "drift.detected", "message": "5 features drifted"}],
    }  # fmt: skip


def make_history(run: dict[str, Any], windows: int) -> list[dict[str, Any]]:
    rows = []
    for w in range(windows):
        for name, f in run["drift"]["features"].items():
            rows.append(
                {
                    "window_start_ms": T0 - (windows - w) * HOUR_MS,
                    "window_end_ms": T0 - (windows - w - 1) * HOUR_MS,
                    "feature": name,
                    "metric": "drift_score",
                    "value": f["score"] * (w + 1) / windows,
                    "threshold": f["threshold"],
                }
            )
    return rows


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    r = make_run()
    assert r["drift"]["n_features"] == 25
    assert r["drift"]["n_drifted"] == 5, r["drift"]["drifted_columns"]
    assert r["drift"]["prediction"]["drifted"]
    return r


@pytest.fixture(scope="module")
def html(run: dict[str, Any]) -> str:
    return render_html(run)


class Doc(HTMLParser):
    """Start tags (with attributes and the enclosing classes) and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[tuple[str, str]] = []
        self.svg_in: list[str] = []  # classes of the <figure> around each <svg>
        self.rows: list[tuple[str, list[str]]] = []  # (tr class, cell texts)
        self._cells: list[str] | None = None
        self._row_class = ""
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg":
            figure = next((c for t, c in reversed(self.stack) if t == "figure"), "")
            self.svg_in.append(figure)
        if tag == "tr":
            self._cells, self._row_class = [], a.get("class") or ""
        if tag == "td" and self._cells is not None:
            self._cells.append("")
        if tag not in {"meta", "br", "path", "use", "rect", "circle", "line", "polyline"}:
            self.stack.append((tag, a.get("class") or ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._cells is not None:
            self.rows.append((self._row_class, self._cells))
            self._cells = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cells:
            self._cells[-1] += data


# --------------------------------------------------------------------------- HTML


def test_html_parses_with_feature_rows_and_one_plot_per_drifted_feature(
    run: dict[str, Any], html: str
) -> None:
    doc = Doc(html)
    assert html.startswith("<!DOCTYPE html>")
    feature_rows = [cells for cls, cells in doc.rows if cls.split()[:1] == ["feature"]]
    # drifted features first
    assert sorted(c[0].strip() for c in feature_rows[:5]) == sorted(run["drift"]["drifted_columns"])
    assert sorted(c[0].strip() for c in feature_rows) == sorted(run["drift"]["features"])
    drifted_rows = [cells for cls, cells in doc.rows if cls == "feature drifted"]
    assert sorted(c[0].strip() for c in drifted_rows) == sorted(run["drift"]["drifted_columns"])
    assert all(c[5].strip() == "drift" for c in drifted_rows)
    # the rule is shown per row; these columns all use distances (reference > 1000 rows)
    assert {c[4].strip() for c in feature_rows} == {"≥ 0.1"}
    # one distribution plot per drifted feature, one for the prediction, no history plot
    assert doc.svg_in.count("plot distribution") == 5
    assert doc.svg_in.count("plot prediction") == 1
    assert len(doc.svg_in) == 6 == html.count("<svg")
    text = " ".join(doc.text)
    for needle in SUMMARY_TEXTS:
        assert needle in text, needle
    assert 'class="banner warning"' in html  # 20% drifted < 50%: no dataset drift
    assert render_html(run) == html  # deterministic: no dates, salted plot ids


def test_concurrent_renders_agree(run: dict[str, Any], html: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        pages = list(pool.map(lambda _: render_html(run), range(3)))
    assert pages == [html] * 3


def test_html_is_self_contained_and_script_free(html: str) -> None:
    doc = Doc(html)
    tags = {t for t, _ in doc.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image"}
    # matplotlib's <use> elements point at markers defined in the same SVG
    refs = [a.get("xlink:href") or a.get("href") or "" for t, a in doc.tags if t == "use"]
    assert refs and all(r.startswith("#") for r in refs)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|data:)""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:|//)""", html, re.I)
    assert "@import" not in html and "<?xml" not in html and "<!DOCTYPE svg" not in html
    for _, attrs in doc.tags:
        assert not any(k.startswith("on") for k in attrs)
    assert "default-src 'none'" in html  # CSP: nothing could load even if injected
    # svg ids unique in the page (matplotlib's clip-path ids are salted per plot)
    ids = [a["id"] for _, a in doc.tags if a.get("id")]
    assert len(ids) == len(set(ids))


def test_hostile_names_are_escaped_in_html_and_svg() -> None:
    run = make_run(rename={"f0": SCRIPT, "f1": "$x^2$ [bold]"}, hostile_category=IMG)
    run["endpoint"] = SCRIPT
    run["drift"]["features"]["city"]["unseen_categories"].append(IMG)
    run["quality"]["issues"][0]["examples"] = [SCRIPT, IMG]
    run["performance"]["variants"][IMG] = {"rows": 1, "metrics": {"accuracy": 1.0}}
    assert SCRIPT in run["drift"]["drifted_columns"] and "city" in run["drift"]["drifted_columns"]
    assert IMG in run["drift"]["features"]["city"]["distribution"]["labels"]
    page = render_html(run)
    doc = Doc(page)
    tags = [t for t, _ in doc.tags]
    assert "script" not in tags and "img" not in tags
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert all(not k.startswith("on") for _, attrs in doc.tags for k in attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the text survives as text (the parser decodes the entities back)
    text = "".join(doc.text)
    assert SCRIPT in text and IMG in text
    # inside the SVG: matplotlib wrote the plot title and tick label as escaped <text>
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 5 + 1
    svg_text = "\n".join(re.findall(r"<text[^>]*>([^<]*)</text>", "".join(svgs)))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg_text
    assert '"&gt;&lt;img src=x onerror=' in svg_text  # tick label (clipped to 22 characters)
    # mathtext is off: a "$" name is plain text, not a formula (and not an error)
    assert "$x^2$ [bold]" in svg_text


def test_drift_over_time_plot_needs_two_windows(run: dict[str, Any]) -> None:
    one = render_html(run, make_history(run, 1))
    assert 'id="history"' not in one and one.count("<svg") == 6
    hist = make_history(run, 4)
    hist += [{"window_start_ms": T0, "window_end_ms": T0 + HOUR_MS, "feature": "f5",
              "metric": "missing_rate", "value": 0.5, "threshold": 0.1}]  # fmt: skip
    page = render_html(run, hist)
    doc = Doc(page)
    assert doc.svg_in.count("plot history") == 1 and len(doc.svg_in) == 7
    data = report_data(run, hist)["history"]
    assert len(data["windows"]) == 4 and len(data["series"]) == 25
    plotted = data["plotted"]
    assert len(plotted) == report.MAX_HISTORY_FEATURES
    assert set(plotted[:5]) == set(run["drift"]["drifted_columns"])  # drifted first
    svg = re.search(r'<figure class="plot history">(.*?)</figure>', page, re.S)
    assert svg is not None
    labels = set(re.findall(r"<text[^>]*>([^<]*)</text>", svg.group(1)))
    assert set(plotted) <= labels and "f22" not in labels and "threshold" in labels
    assert report_data(run, [])["history"] is None


def test_p_value_tests_show_their_rule_and_history_panel() -> None:
    run = make_run(rows=800, n_numeric=3, shifted=1)  # <= 1000 reference rows: p-values
    tests = {n: f["test"] for n, f in run["drift"]["features"].items()}
    assert tests["f0"] == "ks" and tests["city"] == "chisquare" and tests["flag"] == "z"
    data = report_data(run, make_history(run, 3))
    rules = {f["column"]: f["rule"] for f in data["drift"]["features"]}
    assert rules["f0"] == "p ≤ 0.05" and rules["city"] == "p < 0.05" and rules["flag"] == "p < 0.05"
    assert {s["direction"] for s in data["history"]["series"]} == {"p_value"}
    page = render_html(run, make_history(run, 3))
    assert "p-value (drift below)" in page


# --------------------------------------------------------------------------- model details


def test_bins_labels_and_open_bins() -> None:
    d = report._distribution(
        {
            "kind": "bins",
            "edges": [0.0, 1.5, 1000.0],
            "reference": [0, 10, 30, 0],
            "current": [5, 10, 5, 0],
        }
    )
    assert d is not None
    assert d["labels"] == ["< 0", "[0, 1.5)", "[1.5, 1e+03)"]  # empty upper open bin dropped
    assert d["reference_share"] == [0.0, 0.25, 0.75] and d["current_share"] == [0.25, 0.5, 0.25]
    close = report._distribution(
        {"kind": "bins", "edges": [1.0001, 1.0002], "reference": [1, 1, 1], "current": [1, 1, 1]}
    )
    assert close is not None and close["labels"] == ["< 1.0001", "[1.0001, 1.0002)", "≥ 1.0002"]
    assert report._distribution({"kind": "bins", "edges": [1.0], "reference": [1]}) is None
    assert report._distribution(None) is None
    vals = report._distribution(
        {
            "kind": "values",
            "labels": [str(i) for i in range(60)],
            "reference": [1] * 60,
            "current": [2] * 60,
        }
    )
    assert vals is not None and len(vals["labels"]) == report.MAX_PLOT_LABELS
    assert vals["labels"][-1] == "other" and vals["reference"][-1] == 60 - 39


def test_test_families_match_drift_module() -> None:
    assert report.P_VALUE_TESTS == drift_mod.P_VALUE_TESTS
    assert report.DISTANCE_TESTS == set(drift_mod.DEFAULT_THRESHOLDS) - drift_mod.P_VALUE_TESTS
    for test in drift_mod.DEFAULT_THRESHOLDS:
        for score in (0.0, 0.05, 0.1, 0.5):
            assert report._over(test, score, 0.05) == drift_mod.is_drift(test, score, 0.05)


def test_sparse_and_malformed_runs_render() -> None:
    for run in [
        {},
        {"drift": None, "quality": None, "performance": None, "alerts": None, "window": None},
        {"drift": {"features": {"a": None, "b": {"score": None, "distribution": {"kind": "?"}}}}},
        {"drift": {"features": {"a": {"drifted": True, "score": "bad", "distribution": None}}},
         "performance": {"variants": {"v": None}, "comparison": {"ci": [1]}},
         "quality": {"issues": [None, {"examples": "not-a-list"}]}, "created": "yesterday"},
    ]:  # fmt: skip
        page = render_html(run)
        Doc(page)
        assert json.loads(render_json(run))["schema"] == report.REPORT_SCHEMA
        render_rich(run)
    page = render_html({"drift": {"features": {"a": {"drifted": True, "distribution": None}}}})
    assert "Not plotted" in page and "<svg" not in page
    with pytest.raises(InvalidInput):
        render_html([])  # type: ignore[arg-type]


def test_dataset_drift_banner() -> None:
    run = {"drift": {"features": {"a": {"drifted": True, "test": "psi", "score": 0.3,
                                        "threshold": 0.1}},
                     "n_drifted": 1, "n_features": 1, "share_drifted": 1.0, "drift_share": 0.5,
                     "dataset_drift": True}}  # fmt: skip
    page = render_html(run)
    assert 'class="banner drift"' in page and "Dataset drift detected: 1 of 1" in page
    calm = {"drift": {"features": {"a": {"drifted": False, "score": 0.01, "threshold": 0.1}}}}
    assert 'class="banner ok"' in render_html(calm)


def test_real_quality_and_performance_results() -> None:
    """The shapes of dockyard.monitoring.quality / performance and the service's run."""
    q_mod = pytest.importorskip("dockyard.monitoring.quality")
    perf_mod = pytest.importorskip("dockyard.monitoring.performance")
    rng = np.random.default_rng(1)
    prof = profile_table(pa.table({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)}))
    x = rng.normal(size=200).tolist()
    x[:2] = [None, 1e6]
    c = rng.choice(["a", "b"], 200).tolist()
    c[:2] = [IMG, None]
    quality = q_mod.data_quality(prof, pa.table({"x": x, "c": c})).to_dict()
    labels = rng.choice(["0", "1"], 600)
    preds = np.where(rng.random(600) < 0.85, labels, np.where(labels == "0", "1", "0"))
    joined = pa.table({"variant": ["a"] * 300 + ["b"] * 300, "prediction": preds, "label": labels})
    perf = perf_mod.performance_by_variant(joined)
    p1 = rng.random(100)
    perf["variants"]["a"]["estimated"] = perf_mod.estimate_performance(
        np.column_stack([1 - p1, p1]), ["0", "1"]
    )
    perf["variants"]["b"]["estimated"] = {"estimated": True, "error": "other classes"}
    perf["comparison"] = perf_mod.compare_variants(
        {"label": labels[:300], "prediction": preds[:300]},
        {"label": labels[300:], "prediction": preds[300:]},
        "accuracy",
        names=("a", "b"),
    )
    run = {"status": "insufficient", "notes": ["12 live rows < min_rows 100"],
           "quality": quality, "performance": perf, "drift": None}  # fmt: skip
    data = report_data(run)
    q = data["quality"]
    # (the exact issue rules belong to dockyard.monitoring.quality; only the shapes matter)
    assert q["n_issues"] == len(quality["issues"]) == len(q["issues"]) >= 2
    assert {"column": "c", "check": "unseen_category"}.items() <= q["issues"][-1].items()
    assert q["issues"][-1]["examples"] == [IMG]
    assert q["columns"][0]["column"] == "x" and q["columns"][0]["counts"]["missing"] == 1
    assert q["checks"][:2] == ["missing", "type_mismatch"] and "unseen_category" in q["checks"]
    assert not {"rows", "kind", "dtype"} & set(q["checks"])
    p = data["performance"]
    a = p["variants"][0]
    assert set(a["metrics"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert a["estimated"]["method"] == "cbpe" and a["estimated"]["n"] == 100
    assert "n" not in p["metric_names"] and "classes" not in p["metric_names"]
    cmp = p["comparison"]
    assert (cmp["a"], cmp["b"], cmp["a_n"], cmp["method"]) == ("a", "b", 300, "z_test")
    assert cmp["ci"][0] < cmp["difference"] < cmp["ci"][1]
    assert data["summary"]["message"] == "No drift verdict in this run (too few rows)."
    page = render_html(run)
    text = " ".join(Doc(page).text)
    for needle in ("12 live rows < min_rows 100", "insufficient", "unseen_category", IMG,
                   "over 100 unlabeled rows", "not available: other classes", "z_test",
                   cmp["verdict"]):  # fmt: skip
        assert needle in text, needle
    assert "<img" not in page
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render_rich(run))
    out = console.export_text()
    assert "A/B accuracy: a 0.8567 vs b 0.84" in out and "a estimate (cbpe)" in out


# --------------------------------------------------------------------------- JSON and Rich


def test_json_round_trips_with_null_for_nan(run: dict[str, Any]) -> None:
    r = copy.deepcopy(run)
    r["drift"]["features"]["f10"]["score"] = float("nan")
    r["drift"]["features"]["f11"]["statistic"] = float("inf")
    r["drift"]["features"]["f12"]["score"] = np.float64(0.25)
    hist = make_history(r, 3)
    text = render_json(r, hist)
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data == report_data(r, hist)
    assert render_json(r, hist) == text  # stable
    feats = {f["column"]: f for f in data["drift"]["features"]}
    assert feats["f10"]["score"] is None and feats["f10"]["status"] == "n/a"
    assert feats["f11"]["statistic"] is None and feats["f12"]["score"] == 0.25
    assert list(data) == sorted(data) and list(data["summary"]) == sorted(data["summary"])
    assert data["summary"]["n_drifted"] == 5 and data["summary"]["dataset_drift"] is False
    ch = next(v for v in data["performance"]["variants"] if v["name"] == "challenger")
    assert ch["estimated"]["values"] == {"accuracy": 0.89, "f1": None}
    assert len(data["history"]["windows"]) == 3


def test_rich_renders_summary_and_tables(run: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render_rich(run))
    out = console.export_text()
    for name in run["drift"]["drifted_columns"]:
        assert re.search(rf"^\s*{re.escape(name)}\s+\w+\s+[\d.]+\s+≥ 0\.1\s+drift", out, re.M)
    assert "score (prediction)" in out
    assert "quality issues" in out and "out_of_range" in out
    assert "challenger (shadow) estimate (cbpe)" in out and "0.89" in out
    assert "no significant difference" in out
    # markup-looking names print literally
    hostile = {"drift": {"features": {"[bold]x[/]": {"drifted": True, "score": 0.5}}}}
    console = Console(record=True, width=120)
    console.print(render_rich(hostile))
    assert "[bold]x[/]" in console.export_text()


# --------------------------------------------------------------------------- files


def test_write_report_is_atomic_and_refuses_directories(
    run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    out = write_report(run, target)
    assert out == target and target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    js = write_report(run, tmp_path / "report.json", fmt="json", history=make_history(run, 2))
    assert json.loads(js.read_text())["history"]["windows"]
    with pytest.raises(InvalidInput, match="directory"):
        write_report(run, tmp_path)
    with pytest.raises(InvalidInput, match="format"):
        write_report(run, tmp_path / "x.pdf", fmt="pdf")  # type: ignore[arg-type]

    # a failed replace leaves the old file as it was and no temporary file behind
    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report({}, target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "fraud" in target.read_text(encoding="utf-8")
    assert sorted(os.listdir(target.parent)) == ["report.html"]


def test_template_is_package_data() -> None:
    from importlib.resources import files

    assert files("dockyard.monitoring").joinpath("templates", "report.html.j2").is_file()


def test_import_is_light() -> None:
    code = "import dockyard.monitoring.report, json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {"matplotlib", "numpy", "jinja2", "rich"} & loaded
