"""Monitoring reports: one monitor run rendered as offline HTML, JSON, or a Rich renderable.

Input is the plain ``run`` mapping the monitor service stores (window, reference, the
``DriftResult.to_dict()`` of :mod:`dockyard.monitoring.drift`, data quality, performance,
alerts) and optionally the drift-score ``history`` rows of earlier windows. Every key is
optional and every value may be None; the report shows what is there.

Decisions:

- **One view model, three renderers.** :func:`report_data` normalises the run into plain
  JSON-safe Python (non-finite floats become None, NumPy scalars become Python numbers, maps
  keyed by user strings become lists, features ordered drifted first then as given).
  :func:`render_json` dumps exactly that (``orjson``, sorted keys, NaN/inf -> null), the HTML
  template and :func:`render_rich` only format it, so the three outputs cannot disagree.
- **Self-contained, JS-free HTML.** No external script, stylesheet, font or image: CSS is
  inline and plots are inline SVG. The page has no JavaScript at all and declares a
  Content-Security-Policy (``default-src 'none'; style-src 'unsafe-inline'``) so that even an
  escaping bug could not run a script or fetch anything. Details that may be long (per-column
  quality counts) use ``<details>``, which needs no script.
- **Escaping.** Feature, endpoint, category and example strings are user-controlled. The page
  is a Jinja2 template with ``autoescape=True`` (and ``StrictUndefined``); the only values
  marked safe are the SVG documents written by matplotlib, whose SVG backend escapes every text
  it writes (``&``, ``<``, ``>``). matplotlib's mathtext is switched off
  (``text.parse_math=False``) so a ``$`` in a name is neither interpreted nor an error. The
  Rich output wraps every user string in ``rich.text.Text`` so ``[...]`` is never read as
  markup.
- **Plots.** matplotlib is imported lazily inside the plotting code (about 0.5 s to import);
  figures are ``matplotlib.figure.Figure`` objects saved with ``format="svg"``: no pyplot, no
  global backend, no figure registry. Settings go through ``matplotlib.rc_context``:
  ``svg.fonttype="none"`` (text stays text: small and searchable), no metadata (no date, so
  output is deterministic), ``svg.hashsalt``/``svg.id`` set per plot so generated ids are
  deterministic; every id in a plot (matplotlib names groups ``axes_1``... in every document)
  and every ``#ref`` to one is then prefixed with the plot's id, so ids are unique within the
  page. The XML prolog and DOCTYPE are stripped before inlining. Margins are computed from
  the label lengths rather than by a layout engine (constrained layout costs ~30% more per
  plot); a plot costs ~70 ms, the cold matplotlib import ~0.5 s. Distribution plots are
  side-by-side bars of *shares* (each side sums to 1);
  numeric bins are labelled ``< e0``, ``[e0, e1)``, ..., ``≥ em`` with the fewest significant
  digits that keep the edges distinct; an outer open bin empty on both sides is omitted. At
  most :data:`MAX_DISTRIBUTION_PLOTS` drifted features get a plot (the rest are listed), plus
  the prediction column whenever it has a distribution. The drift-over-time plot appears with
  at least two windows in ``history``; it shows at most :data:`MAX_HISTORY_FEATURES` features
  (drifted in this run first, then the most often over threshold), p-value tests (ks,
  chisquare, z: drift *below* the line, log scale) and distance tests (wasserstein,
  jensenshannon, psi: drift *at or above* the line) in separate panels, since one axis cannot
  serve both. A series' test comes from the run's feature (or a ``test`` key on the history
  row); features of unknown test go with the distances, labelled "score".
- **Shared state.** ``matplotlib.rc_context`` changes the process-wide ``rcParams`` for its
  duration, and ``warnings.catch_warnings`` (used to silence matplotlib warnings such as a
  glyph missing from the font for a name in an unusual script) is process-global before
  Python 3.14. Both are held under one module lock, so concurrent renders in threads are
  safe (plots are drawn one at a time; the GIL would serialise them anyway). Code outside
  this module that uses matplotlib in other threads at the same moment could observe the
  temporary settings.
- **Input shapes** follow the producers: ``quality`` as ``QualityResult.to_dict()`` (per-column
  checks ``{check: {"count", ...}}``, plain counts accepted too), ``performance`` as
  ``performance_by_variant`` with ``estimated`` (``estimate_performance``, or ``{"error"}``)
  and ``comparison`` (``compare_variants``: ``a``/``b`` as ``{"name", "n", "value"}``,
  ``ci_low``/``ci_high``; a plain name and ``ci: [lo, hi]`` are accepted too). Result objects
  with a ``to_dict()`` are accepted in place of their dicts. Run ``status`` and ``notes`` (as
  the monitor service stores them) are shown under the banner.
- **Score rules** mirror ``drift.is_drift``: ks ``p ≤ t``, chisquare / z ``p < t``, distances
  ``≥ t``. NaN scores (no current values) show as "n/a".
- **Writing** (:func:`write_report`) goes to a temporary file in the target directory, then
  ``os.replace``: readers never see a half-written report.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import numbers
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dockyard.core.errors import InvalidInput
from dockyard.monitoring.stattests import ALIASES as _ALIASES
from dockyard.monitoring.stattests import DISTANCE_TESTS, P_VALUE_TESTS

if TYPE_CHECKING:
    from jinja2 import Template
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from rich.console import RenderableType

__all__ = [
    "MAX_DISTRIBUTION_PLOTS",
    "MAX_HISTORY_FEATURES",
    "REPORT_SCHEMA",
    "render_html",
    "render_json",
    "render_rich",
    "report_data",
    "write_report",
]

REPORT_SCHEMA = "dockyard.monitoring.report/1"
MAX_DISTRIBUTION_PLOTS = 24
"""Drifted features beyond this many are listed without a plot (keeps rendering fast)."""
MAX_HISTORY_FEATURES = 10
"""Features drawn in the drift-over-time plot."""
MAX_PLOT_LABELS = 40
MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 80
MAX_UNSEEN = 20
RICH_MAX_FEATURES = 40

_QUALITY_NOT_CHECKS = frozenset({"rows", "kind", "dtype"})
_NOT_METRICS = frozenset(
    {"n", "task", "average", "positive", "classes", "calibrated", "estimated", "method", "error"}
)
"""Keys of performance.classification_metrics / estimate_performance that are not metrics."""
HISTORY_METRICS = frozenset({"drift_score", "score"})
"""History rows with one of these ``metric`` values (or none) are drift scores."""

_CLASSIFICATION_HEADLINE = ("accuracy", "f1", "roc_auc", "precision", "recall", "log_loss")
_REGRESSION_HEADLINE = ("rmse", "mae", "r2", "mse", "mape")

Format = Literal["html", "json"]


# --------------------------------------------------------------------------- small helpers


def _map(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _plain(x: Any) -> Any:
    """A result object (``DriftResult`` and friends) as its ``to_dict()``; others unchanged."""
    to_dict = getattr(x, "to_dict", None)
    return to_dict() if callable(to_dict) and not isinstance(x, Mapping) else x


def _list(x: Any) -> list[Any]:
    if x is None or isinstance(x, str | bytes | Mapping):
        return []
    try:
        return list(x)
    except TypeError:
        return []


def _num(x: Any) -> float | int | None:
    """A finite Python number, else None (bools, strings, NaN and inf are not numbers here)."""
    if x is None or isinstance(x, bool) or not isinstance(x, numbers.Real):
        return None
    if isinstance(x, numbers.Integral):
        return int(x)
    f = float(x)
    return f if math.isfinite(f) else None


def _int(x: Any) -> int | None:
    v = _num(x)
    if v is None:
        return None
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    return v


def _str(x: Any) -> str | None:
    if x is None:
        return None
    return x if isinstance(x, str) else str(x)


def _bool(x: Any) -> bool | None:
    if x is None:
        return None
    if isinstance(x, bool):
        return x
    if isinstance(x, numbers.Real):
        return bool(x)
    return None


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _iso(ms: Any) -> str | None:
    """Epoch milliseconds as UTC ISO 8601 (``2026-01-02T03:04:05Z``); strings pass through."""
    if isinstance(ms, str):
        return ms
    v = _num(ms)
    if v is None:
        return None
    try:
        dt = datetime.fromtimestamp(v / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    spec = "seconds" if dt.microsecond == 0 else "milliseconds"
    return dt.isoformat(timespec=spec).replace("+00:00", "Z")


def fmt_number(v: Any) -> str:
    """Short human formatting: ``—`` for missing, thousands separators, 4 significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        f = float(v)
        if not math.isfinite(f):
            return "—"
        if f == 0:
            return "0"
        if f.is_integer() and abs(f) < 1e15:
            return f"{int(f):,}"
        return f"{f:.4g}"
    return str(v)


def fmt_percent(v: Any, digits: int = 1) -> str:
    f = _num(v)
    return "—" if f is None else f"{f * 100:.{digits}f}%"


def _canonical_test(test: str | None) -> str | None:
    if not test:
        return None
    t = test.lower()
    return _ALIASES.get(t, t)


def _direction(test: str | None) -> str | None:
    t = _canonical_test(test)
    if t in P_VALUE_TESTS:
        return "p_value"
    if t in DISTANCE_TESTS:
        return "distance"
    return None


def _rule(test: str | None, threshold: float | int | None) -> str:
    """The drift rule of a row: ``p ≤ 0.05`` (ks), ``p < 0.05`` (chisquare, z), ``≥ 0.1``."""
    if threshold is None:
        return ""
    t = fmt_number(threshold)
    canonical = _canonical_test(test)
    if canonical == "ks":
        return f"p ≤ {t}"
    if canonical in P_VALUE_TESTS:
        return f"p < {t}"
    if canonical in DISTANCE_TESTS:
        return f"≥ {t}"
    return f"threshold {t}"


def _over(test: str | None, value: float | None, threshold: float | None) -> bool:
    """Whether ``value`` is on the drift side of ``threshold`` (as ``drift.is_drift``)."""
    if value is None or threshold is None:
        return False
    canonical = _canonical_test(test)
    if canonical == "ks":
        return value <= threshold
    if canonical in P_VALUE_TESTS:
        return value < threshold
    return value >= threshold


def _short_edges(edges: Sequence[float]) -> list[str]:
    """Edge labels with the fewest significant digits (3..10) that keep them distinct."""
    for digits in range(3, 11):
        labels = [f"{e:.{digits}g}" for e in edges]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(float(e)) for e in edges]


# --------------------------------------------------------------------------- the view model


def _distribution(d: Any) -> dict[str, Any] | None:
    """Plot data with labels and shares, or None when the shape is not usable."""
    d = _map(d)
    kind = d.get("kind")
    ref = [_num(c) or 0 for c in _list(d.get("reference"))]
    cur = [_num(c) or 0 for c in _list(d.get("current"))]
    if kind == "bins":
        edges = [_num(e) for e in _list(d.get("edges"))]
        if not edges or any(e is None for e in edges):
            return None
        names = _short_edges([float(e) for e in edges if e is not None])
        inner = [f"[{a}, {b})" for a, b in itertools.pairwise(names)]
        if len(ref) == len(cur) == len(edges) + 1:
            labels = [f"< {names[0]}", *inner, f"≥ {names[-1]}"]
            # an open outer bin that is empty on both sides says nothing: drop it
            if len(labels) > 2 and ref[-1] == 0 and cur[-1] == 0:
                labels, ref, cur = labels[:-1], ref[:-1], cur[:-1]
            if len(labels) > 2 and ref[0] == 0 and cur[0] == 0:
                labels, ref, cur = labels[1:], ref[1:], cur[1:]
        elif len(ref) == len(cur) == len(edges) - 1 and inner:
            labels = inner
        else:
            return None
    elif kind == "values":
        labels = [_str(x) or "" for x in _list(d.get("labels"))]
        n = min(len(labels), len(ref), len(cur))
        if n == 0:
            return None
        labels, ref, cur = labels[:n], ref[:n], cur[:n]
        if n > MAX_PLOT_LABELS:
            keep = MAX_PLOT_LABELS - 1
            labels = [*labels[:keep], "other"]
            ref = [*ref[:keep], sum(ref[keep:])]
            cur = [*cur[:keep], sum(cur[keep:])]
    else:
        return None
    tr, tc = sum(ref), sum(cur)
    return {
        "kind": kind,
        "labels": labels,
        "reference": ref,
        "current": cur,
        "reference_share": [r / tr if tr else 0.0 for r in ref],
        "current_share": [c / tc if tc else 0.0 for c in cur],
    }


def _feature(name: str, d: Any) -> dict[str, Any]:
    d = _map(d)
    test = _str(d.get("test"))
    score = _num(d.get("score"))
    threshold = _num(d.get("threshold"))
    drifted = bool(_bool(d.get("drifted")))
    status = "drift" if drifted else ("n/a" if score is None else "ok")
    unseen = [_clip(_str(u) or "", MAX_EXAMPLE_CHARS) for u in _list(d.get("unseen_categories"))]
    return {
        "column": _str(d.get("column")) or name,
        "kind": _str(d.get("kind")),
        "test": test,
        "direction": _direction(test),
        "rule": _rule(test, threshold),
        "score": score,
        "threshold": threshold,
        "statistic": _num(d.get("statistic")),
        "drifted": drifted,
        "status": status,
        "n_ref": _int(d.get("n_ref")),
        "n_cur": _int(d.get("n_cur")),
        "n_unique": _int(d.get("n_unique")),
        "unseen_count": _int(d.get("unseen_count")) or 0,
        "unseen_categories": unseen[:MAX_UNSEEN],
        "note": _str(d.get("note")) or "",
        "distribution": _distribution(d.get("distribution")),
    }


def _drift(drift: Any) -> dict[str, Any] | None:
    if not isinstance(drift, Mapping):
        return None
    raw = drift.get("features")
    if isinstance(raw, Mapping):
        feats = [_feature(str(k), v) for k, v in raw.items()]
    else:  # tolerate a list of feature dicts
        feats = [_feature(str(_map(v).get("column", i)), v) for i, v in enumerate(_list(raw))]
    feats = [f for f in feats if f["drifted"]] + [f for f in feats if not f["drifted"]]
    pred = drift.get("prediction")
    prediction = _feature("prediction", pred) if isinstance(pred, Mapping) else None
    n_features = _int(drift.get("n_features"))
    n_features = len(feats) if n_features is None else n_features
    n_drifted = _int(drift.get("n_drifted"))
    n_drifted = sum(f["drifted"] for f in feats) if n_drifted is None else n_drifted
    share = _num(drift.get("share_drifted"))
    if share is None and n_features:
        share = n_drifted / n_features
    drifted_columns = [_str(c) or "" for c in _list(drift.get("drifted_columns"))]
    return {
        "features": feats,
        "prediction": prediction,
        "n_drifted": n_drifted,
        "n_features": n_features,
        "share_drifted": share,
        "drift_share": _num(drift.get("drift_share")),
        "dataset_drift": _bool(drift.get("dataset_drift")),
        "drifted_columns": drifted_columns or [f["column"] for f in feats if f["drifted"]],
        "missing_columns": [_str(c) or "" for c in _list(drift.get("missing_columns"))],
    }


def _quality(q: Any) -> dict[str, Any] | None:
    if not isinstance(q, Mapping):
        return None
    issues = []
    for it in _list(q.get("issues")):
        it = _map(it)
        examples = [
            "null" if e is None else _clip(_str(e) or "", MAX_EXAMPLE_CHARS)
            for e in _list(it.get("examples"))
        ]
        issues.append(
            {
                "column": _str(it.get("column")) or "",
                "check": _str(it.get("check")) or "",
                "count": _num(it.get("count")),
                "rate": _num(it.get("rate")),
                "examples": examples[:MAX_EXAMPLES],
            }
        )
    checks: list[str] = []
    columns = []
    for name, per_check in _map(q.get("columns")).items():
        row = {}
        for k, v in _map(per_check).items():
            # quality.data_quality: {check: {"count", "rate", "examples", ...}}; plain counts too
            count = _num(v.get("count")) if isinstance(v, Mapping) else _num(v)
            if count is None or k in _QUALITY_NOT_CHECKS:
                continue
            row[str(k)] = count
            if str(k) not in checks:
                checks.append(str(k))
        columns.append({"column": str(name), "counts": row})
    n_issues = _int(q.get("n_issues"))
    return {
        "rows": _int(q.get("rows")),
        "n_issues": len(issues) if n_issues is None else n_issues,
        "issues": issues,
        "missing_columns": [_str(c) or "" for c in _list(q.get("missing_columns"))],
        "extra_columns": [_str(c) or "" for c in _list(q.get("extra_columns"))],
        "checks": checks,
        "columns": columns,
    }


def _scalar_metrics(m: Any) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {}
    for k, v in _map(m).items():
        if str(k) in _NOT_METRICS or isinstance(v, bool):
            continue
        if v is None or isinstance(v, numbers.Real):
            out[str(k)] = _num(v)
    return out


def _headline(task: str | None, variants: list[dict[str, Any]], cmp: Any) -> str | None:
    if not variants:
        return None
    primary = next((v for v in variants if not v["shadow"]), variants[0])
    prefer = _REGRESSION_HEADLINE if task == "regression" else _CLASSIFICATION_HEADLINE
    parts: list[str] = []

    def pick(metrics: Mapping[str, Any]) -> str | None:
        keys = [k for k in prefer if metrics.get(k) is not None]
        keys += [k for k, v in metrics.items() if v is not None and k not in keys]
        return keys[0] if keys else None

    measured, estimated = primary["metrics"] or {}, primary["estimated"] or {}
    key = pick(measured)
    if key is not None:
        text = f"{primary['name']}: {key} {fmt_number(measured[key])}"
        if primary["labeled"] is not None:
            text += f" on {fmt_number(primary['labeled'])} labeled rows"
        if primary["coverage"] is not None:
            text += f" (coverage {fmt_percent(primary['coverage'])})"
        parts.append(text)
    else:
        key = pick(estimated.get("values") or {})
        if key is not None:
            method = estimated.get("method") or "estimate"
            value = fmt_number(estimated["values"][key])
            parts.append(f"{primary['name']}: {key} ≈ {value} (estimate, {method})")
    if cmp and cmp.get("verdict"):
        parts.append(f"A/B: {cmp['verdict']}")
    return "; ".join(parts) or None


def _performance(p: Any) -> dict[str, Any] | None:
    if not isinstance(p, Mapping):
        return None
    task = _str(p.get("task"))
    variants = []
    for name, v in _map(p.get("variants")).items():
        v = _map(v)
        metrics = v.get("metrics")
        est = v.get("estimated")
        variants.append(
            {
                "name": str(name),
                "rows": _int(v.get("rows")),
                "labeled": _int(v.get("labeled")),
                "coverage": _num(v.get("coverage")),
                "shadow": bool(_bool(v.get("shadow"))),
                "metrics": _scalar_metrics(metrics) if isinstance(metrics, Mapping) else None,
                "estimated": (
                    {
                        "method": _str(est.get("method")),
                        "n": _int(est.get("n")),
                        "values": _scalar_metrics(est),
                        "error": _str(est.get("error")),
                    }
                    if isinstance(est, Mapping)
                    else None
                ),
            }
        )
    metric_names: list[str] = []
    for v in variants:
        for k in [*(v["metrics"] or {}), *((v["estimated"] or {}).get("values") or {})]:
            if k not in metric_names:
                metric_names.append(k)
    c = p.get("comparison")
    comparison = None
    if isinstance(c, Mapping):
        ci = [_num(x) for x in _list(c.get("ci"))]
        if len(ci) != 2:  # performance.compare_variants: ci_low / ci_high
            ci = [_num(c.get("ci_low")), _num(c.get("ci_high"))]
        a, b = c.get("a"), c.get("b")  # a name, or {"name", "n", "value"}
        comparison = {
            "metric": _str(c.get("metric")),
            "method": _str(c.get("method")),
            "a": _str(_map(a).get("name")) if isinstance(a, Mapping) else _str(a),
            "b": _str(_map(b).get("name")) if isinstance(b, Mapping) else _str(b),
            "a_value": _num(_map(a).get("value")),
            "b_value": _num(_map(b).get("value")),
            "a_n": _int(_map(a).get("n")),
            "b_n": _int(_map(b).get("n")),
            "difference": _num(c.get("difference")),
            "ci": ci if any(x is not None for x in ci) else None,
            "p_value": _num(c.get("p_value")),
            "significant": _bool(c.get("significant")),
            "better": _str(c.get("better")),
            "verdict": _str(c.get("verdict")),
            "needed_per_variant": _int(c.get("needed_per_variant")),
        }
    return {
        "task": task,
        "variants": variants,
        "metric_names": metric_names,
        "comparison": comparison,
        "headline": _headline(task, variants, comparison),
    }


def _history(
    history: Sequence[Mapping[str, Any]] | None, drift: dict[str, Any] | None
) -> dict[str, Any] | None:
    rows = [_map(r) for r in _list(history)]
    rows = [r for r in rows if r.get("metric") is None or r.get("metric") in HISTORY_METRICS]
    if not rows:
        return None
    known = {f["column"]: f for f in (drift or {}).get("features", [])}
    if drift and drift["prediction"]:
        known.setdefault(drift["prediction"]["column"], drift["prediction"])
    windows: dict[tuple[int, int], None] = {}
    points: dict[str, dict[tuple[int, int], float | None]] = {}
    thresholds: dict[str, float | int | None] = {}
    tests: dict[str, str | None] = {}
    for r in rows:
        name = _str(r.get("feature"))
        start, end = _int(r.get("window_start_ms")), _int(r.get("window_end_ms"))
        if name is None:
            continue
        if start is None:
            start = end
        if end is None:
            end = start
        if start is None or end is None:
            continue
        key = (start, end)
        windows[key] = None
        points.setdefault(name, {})[key] = _num(r.get("value"))
        thr = _num(r.get("threshold"))
        if thr is not None:
            thresholds[name] = thr
        tests.setdefault(name, _str(r.get("test")))
    order = sorted(windows, key=lambda k: (k[1], k[0]))
    series = []
    for name, pts in points.items():
        feat = known.get(name)
        test = (feat or {}).get("test") or tests.get(name)
        threshold = thresholds.get(name, (feat or {}).get("threshold"))
        values = [pts.get(k) for k in order]
        series.append(
            {
                "feature": name,
                "test": test,
                "direction": _direction(test),
                "threshold": threshold,
                "values": values,
                "drifted_now": bool(feat and feat["drifted"]),
                "n_over": sum(_over(test, v, threshold) for v in values),
            }
        )
    ranked = sorted(
        range(len(series)),
        key=lambda i: (not series[i]["drifted_now"], -series[i]["n_over"], i),
    )
    return {
        "windows": [
            {"start_ms": s, "end_ms": e, "start": _iso(s), "end": _iso(e)} for s, e in order
        ],
        "series": series,
        "plotted": [series[i]["feature"] for i in ranked[:MAX_HISTORY_FEATURES]],
    }


def report_data(
    run: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The report as plain JSON-safe data: what :func:`render_json` writes and the HTML shows."""
    if not isinstance(run, Mapping):
        raise InvalidInput("run must be a mapping (a stored monitor run)")
    window, reference = _map(run.get("window")), _map(run.get("reference"))
    drift = _drift(_plain(run.get("drift")))
    quality = _quality(_plain(run.get("quality")))
    performance = _performance(_plain(run.get("performance")))
    alerts = [
        {"event": _str(_map(a).get("event")) or "", "message": _str(_map(a).get("message")) or ""}
        for a in _list(run.get("alerts"))
    ]
    hist = _history(history, drift)
    any_drift = bool(drift) and (
        bool(drift["n_drifted"]) or bool(drift["prediction"] and drift["prediction"]["drifted"])
    )
    if drift is None:
        status = "warning" if quality and quality["n_issues"] else "unknown"
    elif drift["dataset_drift"]:
        status = "drift"
    elif any_drift or (quality and quality["n_issues"]):
        status = "warning"
    else:
        status = "ok"
    summary = {
        "run_status": _str(run.get("status")),
        "notes": [_str(n) or "" for n in _list(run.get("notes"))],
        "id": _str(run.get("id")),
        "endpoint": _str(run.get("endpoint")),
        "monitor": _str(run.get("monitor")),
        "created": _iso(run.get("created")),
        "window": {
            "start_ms": _int(window.get("start_ms")),
            "end_ms": _int(window.get("end_ms")),
            "start": _iso(window.get("start_ms")),
            "end": _iso(window.get("end_ms")),
            "rows": _int(window.get("rows")),
            "spec": _str(window.get("spec")),
        },
        "reference": {
            "description": _str(reference.get("description")),
            "rows": _int(reference.get("rows")),
        },
        "status": status,
        "dataset_drift": drift["dataset_drift"] if drift else None,
        "n_drifted": drift["n_drifted"] if drift else None,
        "n_features": drift["n_features"] if drift else None,
        "share_drifted": drift["share_drifted"] if drift else None,
        "drift_share": drift["drift_share"] if drift else None,
        "prediction_drifted": (
            drift["prediction"]["drifted"] if drift and drift["prediction"] else None
        ),
        "n_quality_issues": quality["n_issues"] if quality else None,
        "performance": performance["headline"] if performance else None,
    }
    summary["message"] = _status_message(summary, drift)
    return {
        "schema": REPORT_SCHEMA,
        "summary": summary,
        "drift": drift,
        "quality": quality,
        "performance": performance,
        "alerts": alerts,
        "history": hist,
    }


def _status_message(s: Mapping[str, Any], drift: Mapping[str, Any] | None) -> str:
    if drift is None:
        why = {"no_data": " (no data in the window)", "insufficient": " (too few rows)"}
        return f"No drift verdict in this run{why.get(s['run_status'] or '', '')}."
    share = f"{s['n_drifted']} of {s['n_features']} features drifted"
    if s["share_drifted"] is not None:
        share += f" ({fmt_percent(s['share_drifted'])}"
        share += (
            f", dataset drift at ≥ {fmt_percent(s['drift_share'], 0)})"
            if s["drift_share"] is not None
            else ")"
        )
    if s["status"] == "drift":
        return f"Dataset drift detected: {share}."
    extra = " The prediction column drifted." if s["prediction_drifted"] else ""
    if s["n_drifted"] or s["prediction_drifted"]:
        return f"Some drift, below the dataset threshold: {share}.{extra}"
    return f"No drift detected: {share}."


# --------------------------------------------------------------------------- JSON


def render_json(run: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The report data as JSON: sorted keys (stable output), NaN and inf as null, UTF-8."""
    import orjson

    data = report_data(run, history)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()


# --------------------------------------------------------------------------- plots

_REF_COLOR = "#8a9bb0"
_CUR_COLOR = "#d9534f"
_CUR_OK_COLOR = "#3b7dd8"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "text.usetex": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titlelocation": "left",
    "legend.frameon": False,
    "svg.image_inline": True,
}
_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_PLOT_LOCK = threading.Lock()
"""``rc_context`` and ``catch_warnings`` change process-wide state: one plot at a time."""


def _svg(
    salt: str,
    size: tuple[float, float],
    margins: tuple[float, float, float, float],
    draw: Callable[[Figure], None],
) -> str:
    """Draw on a fresh Figure and return its SVG element (no XML prolog / DOCTYPE).

    ``margins`` (left, right, bottom, top) are in inches: computed from the labels instead
    of a layout engine, which would cost a second layout pass per plot (~30% of the time).
    """
    import matplotlib
    from matplotlib.figure import Figure

    w, h = size
    left, right, bottom, top = margins
    with (
        _PLOT_LOCK,
        matplotlib.rc_context({**_RC, "svg.hashsalt": salt, "svg.id": salt}),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        fig = Figure(figsize=size)
        fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata=_SVG_METADATA)
    text = buf.getvalue().decode("utf-8")
    start = text.find("<svg")
    if start < 0:  # pragma: no cover - matplotlib always writes an <svg> element
        raise RuntimeError("matplotlib wrote no <svg> element")
    return _scope_ids(text[start:].strip(), salt)


_TAG = re.compile(r"<[^<>]+>")
_ID = re.compile(r'\bid="([^"]*)"')
_REF = re.compile(r'(href="#|url\(#)([^")]*)')


def _scope_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and reference to one) with ``prefix``: matplotlib names its groups
    ``figure_1``, ``axes_1``, ... in every document, and ids must be unique in the page.

    Only tags are rewritten: text content cannot hold a tag, since matplotlib escapes ``<``
    and ``>`` in it.
    """

    def tag(m: re.Match[str]) -> str:
        t = _ID.sub(
            lambda a: a.group(0) if a.group(1) == prefix else f'id="{prefix}-{a.group(1)}"',
            m.group(0),
        )
        return _REF.sub(lambda r: f"{r.group(1)}{prefix}-{r.group(2)}", t)

    return _TAG.sub(tag, svg)


_CHAR_IN = 0.075
"""Average width of a 9 pt DejaVu Sans character, in inches (for the margins)."""


def _distribution_plot(salt: str, feature: Mapping[str, Any], title: str) -> str:
    dist = feature["distribution"]
    labels = [_clip(x, 22) for x in dist["labels"]]
    n = len(labels)
    longest = max((len(x) for x in labels), default=0)
    width = max(5.5, min(11.0, 2.0 + 0.42 * n))
    rotate = n > 1 and longest * _CHAR_IN > 0.85 * (width - 1.0) / n
    label_h = (0.64 * longest * _CHAR_IN + 0.15) if rotate else 0.2

    def draw(fig: Figure) -> None:
        from matplotlib.ticker import PercentFormatter

        ax = fig.add_subplot()
        x = list(range(n))
        w = 0.4
        current_color = _CUR_COLOR if feature["drifted"] else _CUR_OK_COLOR
        ax.bar(
            [i - w / 2 for i in x], dist["reference_share"], w, color=_REF_COLOR, label="reference"
        )
        ax.bar(
            [i + w / 2 for i in x], dist["current_share"], w, color=current_color, label="current"
        )
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_xticks(
            x,
            labels,
            rotation=40 if rotate else 0,
            ha="right" if rotate else "center",
            rotation_mode="anchor" if rotate else "default",
        )
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("share of rows")
        ax.set_title(title, pad=18)
        ax.legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, borderaxespad=0.2
        )
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)

    # a rotated first label reaches left of the axes: widen the left margin for it
    left = 0.75
    if rotate and labels:
        left = max(left, 0.77 * len(labels[0]) * _CHAR_IN - 0.2)
    height = 2.4 + label_h
    return _svg(salt, (width, height), (left, 0.15, 0.3 + label_h, 0.55), draw)


def _history_plot(salt: str, hist: Mapping[str, Any]) -> str:
    windows = hist["windows"]
    by_name = {s["feature"]: s for s in hist["series"]}
    shown = [by_name[f] for f in hist["plotted"]]
    groups = [
        ("p_value", [s for s in shown if s["direction"] == "p_value"]),
        ("distance", [s for s in shown if s["direction"] != "p_value"]),
    ]
    groups = [(g, ss) for g, ss in groups if ss]
    ticks = [_window_tick(w) for w in windows]
    colors = {s["feature"]: f"C{i % 10}" for i, s in enumerate(shown)}
    legend_w = 0.85 + _CHAR_IN * 0.9 * max(9, *(len(_clip(s["feature"], 28)) for s in shown))

    def draw(fig: Figure) -> None:
        axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (group, ss) in zip(axes, groups, strict=True):
            _history_panel(ax, group, ss, colors)
        last = axes[-1]
        x = list(range(len(windows)))
        step = max(1, math.ceil(len(x) / 12))
        last.set_xticks(x[::step], ticks[::step], rotation=30, ha="right", rotation_mode="anchor")
        last.set_xlim(-0.3, len(x) - 0.7)
        last.set_xlabel("window end (UTC)")
        axes[0].set_title("Drift score per window")
        handles: dict[str, Any] = {}
        for ax in axes:
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, h)
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="upper right",
            fontsize=8,
            bbox_to_anchor=(1.0, 1.0 - 0.35 / fig.get_figheight()),
        )
        fig.subplots_adjust(hspace=0.15)

    height = 1.3 + 2.1 * len(groups)
    return _svg(salt, (8.0 + legend_w, height), (0.85, legend_w + 0.1, 1.0, 0.35), draw)


def _history_panel(
    ax: Axes, group: str, series: Sequence[Mapping[str, Any]], colors: Mapping[str, str]
) -> None:
    floor = 1e-12
    for s in series:
        xs, ys = [], []
        for i, v in enumerate(s["values"]):
            if v is not None:
                xs.append(i)
                ys.append(max(v, floor) if group == "p_value" else v)
        ax.plot(
            xs,
            ys,
            marker="o",
            markersize=3,
            linewidth=1.3,
            color=colors[s["feature"]],
            label=_clip(s["feature"], 28),
        )
    thresholds = sorted({s["threshold"] for s in series if s["threshold"] is not None})[:3]
    for i, t in enumerate(thresholds):
        ax.axhline(
            max(t, floor) if group == "p_value" else t,
            color="#c0392b",
            linestyle="--",
            linewidth=1,
            label="threshold" if i == 0 else None,
        )
    if group == "p_value":
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log")
        # mathtext is off (text.parse_math), so the default "$10^{-2}$" labels would be raw
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("p-value (drift below)")
    elif any(s["direction"] == "distance" for s in series):
        ax.set_ylabel("distance (drift at/above)")
    else:
        ax.set_ylabel("score")
    ax.grid(alpha=0.3)


def _window_tick(w: Mapping[str, Any]) -> str:
    ms = w["end_ms"] if w["end_ms"] is not None else w["start_ms"]
    if ms is None:
        return ""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return ""


def _plot_title(f: Mapping[str, Any], prefix: str = "") -> str:
    parts = [prefix + f["column"]]
    if f["test"]:
        score = f"{f['test']} {fmt_number(f['score'])}"
        if f["rule"]:
            score += f" (drift if {f['rule']})"
        parts.append(score)
    return _clip(" — ".join(parts), 110)


def _plots(data: Mapping[str, Any]) -> dict[str, Any]:
    drift = data["drift"]
    out: dict[str, Any] = {"features": [], "not_plotted": [], "prediction": None, "history": None}
    if drift:
        drifted = [f for f in drift["features"] if f["drifted"]]
        for f in drifted:
            if f["distribution"] is None or len(out["features"]) >= MAX_DISTRIBUTION_PLOTS:
                out["not_plotted"].append(f["column"])
                continue
            salt = f"dyplot{len(out['features'])}"
            out["features"].append(
                {"column": f["column"], "svg": _distribution_plot(salt, f, _plot_title(f))}
            )
        pred = drift["prediction"]
        if pred and pred["distribution"] is not None:
            title = _plot_title(pred, "prediction: ")
            out["prediction"] = {
                "column": pred["column"],
                "svg": _distribution_plot("dyplotpred", pred, title),
            }
    hist = data["history"]
    if hist and len(hist["windows"]) >= 2 and hist["plotted"]:
        out["history"] = _history_plot("dyplothist", hist)
    return out


# --------------------------------------------------------------------------- HTML


@lru_cache(maxsize=1)
def _template() -> Template:
    from importlib.resources import files

    from jinja2 import Environment, StrictUndefined

    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["num"] = fmt_number
    env.filters["pct"] = fmt_percent
    source = files("dockyard.monitoring").joinpath("templates", "report.html.j2")
    return env.from_string(source.read_text(encoding="utf-8"))


def render_html(run: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None) -> str:
    """A self-contained, script-free HTML page (inline CSS, inline SVG plots)."""
    from markupsafe import Markup

    data = report_data(run, history)
    plots = _plots(data)
    # matplotlib's SVG backend escapes the text it writes: the documents are safe to inline
    for p in plots["features"]:
        p["svg"] = Markup(p["svg"])
    if plots["prediction"]:
        plots["prediction"]["svg"] = Markup(plots["prediction"]["svg"])
    if plots["history"]:
        plots["history"] = Markup(plots["history"])
    return _template().render(r=data, s=data["summary"], plots=plots)


# --------------------------------------------------------------------------- Rich


def render_rich(run: Mapping[str, Any]) -> RenderableType:
    """A compact Rich renderable: a summary panel, the features table, quality issues and
    performance per variant (each table only when there is something to show)."""
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    data = report_data(run)
    s, drift, quality, perf = data["summary"], data["drift"], data["quality"], data["performance"]
    style = {"drift": "bold red", "warning": "yellow", "ok": "green"}.get(s["status"], "dim")
    lines = Text()
    who = " · ".join(
        x
        for x in (
            s["endpoint"] and f"endpoint {s['endpoint']}",
            s["monitor"] and f"monitor {s['monitor']}",
        )
        if x
    )
    w = s["window"]
    span = f"{w['start'] or '?'} → {w['end'] or '?'}"
    if w["spec"]:
        span += f" ({w['spec']})"
    if w["rows"] is not None:
        span += f", {fmt_number(w['rows'])} rows"
    lines.append((who + "\n") if who else "")
    lines.append(f"window {span}\n")
    ref = s["reference"]
    if ref["description"] or ref["rows"] is not None:
        desc = ref["description"] or "reference"
        rows = f" ({fmt_number(ref['rows'])} rows)" if ref["rows"] is not None else ""
        lines.append(f"reference {desc}{rows}\n")
    lines.append(s["message"], style=style)
    if s["n_quality_issues"] is not None:
        lines.append(f"\nquality issues: {s['n_quality_issues']}")
    if s["performance"]:
        lines.append(f"\nperformance: {s['performance']}")
    for note in s["notes"]:
        lines.append(f"\nnote: {note}", style="dim")
    for a in data["alerts"]:
        lines.append(f"\nalert {a['event']}: {a['message']}", style="yellow")
    parts: list[Any] = [
        Panel(lines, title="Dockyard monitoring report", border_style=style, expand=False)
    ]

    if drift and (drift["features"] or drift["prediction"]):
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for col in ("column", "test", "score", "rule", "verdict", "n_cur", "unseen"):
            table.add_column(
                col, justify="right" if col in ("score", "n_cur", "unseen") else "left"
            )
        rows = drift["features"][:RICH_MAX_FEATURES]
        if drift["prediction"]:
            rows = [*rows, drift["prediction"]]
        for f in rows:
            verdict_style = {"drift": "bold red", "ok": "green"}.get(f["status"], "dim")
            name = Text(f["column"])
            if f is drift["prediction"]:
                name.append(" (prediction)", style="italic")
            table.add_row(
                name,
                Text(f["test"] or "—"),
                fmt_number(f["score"]),
                f["rule"],
                Text(f["status"], style=verdict_style),
                fmt_number(f["n_cur"]),
                fmt_number(f["unseen_count"]) if f["unseen_count"] else "",
            )
        hidden = len(drift["features"]) - RICH_MAX_FEATURES
        if hidden > 0:
            table.caption = f"{hidden} more features without drift not shown"
        parts.append(table)
        if drift["missing_columns"]:
            parts.append(Text("missing columns: " + ", ".join(drift["missing_columns"])))

    if quality and quality["issues"]:
        qt = Table(
            title="quality issues",
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            title_justify="left",
        )
        for col in ("column", "check", "count", "rate", "examples"):
            qt.add_column(col, justify="right" if col in ("count", "rate") else "left")
        for it in quality["issues"]:
            qt.add_row(
                Text(it["column"]),
                Text(it["check"]),
                fmt_number(it["count"]),
                fmt_percent(it["rate"], 2),
                Text(_clip(", ".join(it["examples"][:3]), 60)),
            )
        parts.append(qt)

    if perf and perf["variants"]:
        metric_names = perf["metric_names"][:6]
        pt = Table(
            title="performance" + (f" ({perf['task']})" if perf["task"] else ""),
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            title_justify="left",
        )
        pt.add_column("variant")
        for col in ("rows", "labeled", "coverage", *metric_names):
            pt.add_column(Text(col), justify="right")
        for v in perf["variants"]:
            name = Text(v["name"])
            if v["shadow"]:
                name.append(" (shadow)", style="dim")
            common = [fmt_number(v["rows"]), fmt_number(v["labeled"]), fmt_percent(v["coverage"])]
            if v["metrics"] is not None or v["estimated"] is None:
                m = v["metrics"] or {}
                pt.add_row(name, *common, *(fmt_number(m.get(k)) for k in metric_names))
            if v["estimated"] is not None:
                e = v["estimated"]["values"]
                label = Text(v["name"]) if v["metrics"] is not None else name
                label.append(f" estimate ({v['estimated']['method'] or '?'})", style="italic")
                if v["estimated"]["error"]:
                    label.append(f": {_clip(v['estimated']['error'], 40)}", style="dim")
                pt.add_row(
                    label,
                    *(common if v["metrics"] is None else ["", "", ""]),
                    *(fmt_number(e.get(k)) for k in metric_names),
                    style="italic",
                )
        parts.append(pt)
        c = perf["comparison"]
        if c:
            parts.append(Text(_comparison_line(c)))
    return Group(*parts)


def _comparison_line(c: Mapping[str, Any]) -> str:
    def side(name: str | None, value: Any, default: str) -> str:
        return (name or default) + ("" if value is None else f" {fmt_number(value)}")

    text = f"A/B {c['metric'] or 'metric'}: {side(c['a'], c['a_value'], 'a')}"
    text += f" vs {side(c['b'], c['b_value'], 'b')}"
    text += f", difference {fmt_number(c['difference'])}"
    if c["ci"]:
        text += f" [{fmt_number(c['ci'][0])}, {fmt_number(c['ci'][1])}]"
    if c["p_value"] is not None:
        text += f", p = {fmt_number(c['p_value'])}"
    if c["verdict"]:
        text += f" — {c['verdict']}"
    if c["needed_per_variant"] is not None:
        text += f" (needs {fmt_number(c['needed_per_variant'])} per variant)"
    return text


# --------------------------------------------------------------------------- files


def write_report(
    run: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    fmt: Format = "html",
) -> Path:
    """Render and write atomically (temp file in the same directory, then ``os.replace``).

    Parent directories are created; the file gets mode 0o644. A path that is an existing
    directory, or an unknown ``fmt``, raises :class:`~dockyard.core.errors.InvalidInput`.
    """
    target = Path(path)
    if fmt not in ("html", "json"):
        raise InvalidInput(f"unknown report format {fmt!r}; expected 'html' or 'json'")
    if target.is_dir():
        raise InvalidInput(f"report path {str(target)!r} is a directory; give a file name")
    text = render_html(run, history) if fmt == "html" else render_json(run, history)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
