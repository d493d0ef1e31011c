"""`dockyard models`: the model registry from the shell.

A model version is named ``fraud/3``, ``fraud@champion``, ``fraud/production`` (the highest
version with that status, ``latest`` too) or a full ``models:/...`` URI; the registry resolves
them. Every command calls the SDK client, so it works locally and against a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dockyard.cli._output import fmt_time, fmt_value, print_json
from dockyard.cli._output import print_table as _print_table

app = typer.Typer(
    help="Model registry: versions, aliases, lifecycle, validation gates, lineage.",
    no_args_is_help=True,
)
alias_app = typer.Typer(help="Aliases (champion, challenger, ...): set, delete, history.")
app.add_typer(alias_app, name="alias", no_args_is_help=True)
approval_app = typer.Typer(
    help="Four-eyes approvals of a version for production: request, approve, reject, list."
)
app.add_typer(approval_app, name="approval", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")

#: Exit code of `validate` when the gate fails (the command itself worked).
GATE_FAILED_EXIT = 1


def print_table(title: str, columns: list[str], rows: Any, caption: str = "") -> None:
    """The shared table, with Rich markup in text cells escaped (names, descriptions and
    reasons are user text: ``[red]`` must print as typed, never style or break the output)."""
    from rich.markup import escape

    safe = [tuple(escape(c) if isinstance(c, str) else c for c in row) for row in rows]
    _print_table(escape(title), columns, safe, caption=escape(caption))


def _client():  # type: ignore[no-untyped-def]
    from dockyard.client.client import Client

    return Client()


def _is_version_ref(ref: str) -> bool:
    return ref.startswith("models:/") or "/" in ref or "@" in ref


def _resolve(client: Any, ref: str) -> Any:
    """The ModelVersion a reference names (fraud/3, fraud@champion, models:/...)."""
    from dockyard.core.errors import InvalidInput

    if not _is_version_ref(ref):
        raise InvalidInput(
            f"{ref!r} names a model, not a version; use <name>/<version>, <name>@<alias> "
            f"or <name>/<status>, e.g. {ref}/1 or {ref}@champion"
        )
    return client.resolve(ref)


def _status_text(mv: Any) -> str:
    text = mv.status
    if mv.status_reason:
        text += f" ({mv.status_reason})"
    if mv.replacement_version is not None:
        text += f" -> replaced by {mv.replacement_version}"
    return text


def _print_version(mv: Any) -> None:
    from rich.markup import escape

    from dockyard.cli._output import console

    out = console()
    out.print(
        f"[bold]{escape(mv.name)}[/bold] "
        + escape(
            f"version {mv.version}   status {_status_text(mv)}"
            + (f"   aliases {', '.join(sorted(mv.aliases))}" if mv.aliases else "")
        )
    )
    out.print(
        f"flavor {mv.flavor}   task {mv.task or '-'}   trusted pickle "
        f"{'yes' if mv.trusted_pickle else 'no'}\n"
        f"source {mv.source}\n"
        f"package digest {mv.package_digest}\n"
        f"created {fmt_time(mv.creation_time)} by {mv.created_by}"
        + (f"\ncode {_code_text(mv.code)}" if mv.code else "")
        + (f"\n{mv.description}" if mv.description else ""),
        markup=False,
    )
    inputs = (mv.signature or {}).get("inputs") or {}
    if inputs.get("kind") == "columns":
        print_table(
            "Signature (inputs)",
            ["column", "type", "nullable"],
            [(c.get("name"), c.get("type"), c.get("nullable")) for c in inputs["columns"]],
        )
    elif inputs:
        out.print(f"signature: tensor {inputs.get('dtype')} shape {inputs.get('shape')}")
    if mv.metrics:
        print_table("Metrics at registration", ["key", "value"], sorted(mv.metrics.items()))
    if mv.datasets:
        print_table(
            "Datasets",
            ["name", "context", "digest"],
            [(d.get("name"), d.get("context"), str(d.get("digest", ""))[:16]) for d in mv.datasets],
        )
    if mv.validation:
        v = mv.validation
        out.print(
            f"latest validation: {'PASSED' if v.get('passed') else 'FAILED'}"
            + (
                f" against version {v['against_version']}"
                if v.get("against_version") is not None
                else ""
            )
            + f" on {v.get('num_rows')} rows, {fmt_time(v.get('time'))}"
        )


def _code_text(code: dict[str, Any]) -> str:
    commit = str(code.get("git_commit") or "")
    dirty = code.get("git_dirty")
    return commit + (" (dirty)" if dirty in (True, "true") else "")


@app.command()
def register(
    source: str = typer.Argument(
        ..., help="runs:/<run_id>/<path>, models:/<name>/<version>, or a local package folder."
    ),
    name: str = typer.Option(..., "--name", "-n", help="Registered model name."),
    description: str = typer.Option("", help="Description of this version."),
    as_json: bool = JSON,
) -> None:
    """Register a new version of a model (the model is created if missing)."""
    mv = _register(source, name, description)
    if as_json:
        print_json(mv)
        return
    typer.echo(f"registered {mv.name} version {mv.version} ({mv.status}) from {mv.source}")


def _register(source: str, name: str, description: str) -> Any:
    from dockyard.client.models import _is_local_package

    client = _client()
    local = _is_local_package(source)
    if local is not None:
        return client.register_package(name, local, description=description)
    return client.create_model_version(name, source, description=description)


@app.command("list")
def list_(
    max_results: int = typer.Option(100, help="Page size."),
    page_token: str = typer.Option(None, help="Token from the previous page."),
    as_json: bool = JSON,
) -> None:
    """List registered models."""
    page = _client().list_registered_models(max_results=max_results, page_token=page_token)
    if as_json:
        print_json({"items": page.items, "next_page_token": page.next_page_token})
        return
    print_table(
        "Registered models",
        ["name", "latest", "aliases", "owner", "updated", "description"],
        [
            (
                m.name,
                m.latest_version,
                ", ".join(f"{a}={v}" for a, v in sorted(m.aliases.items())),
                m.owner,
                fmt_time(m.last_update_time),
                m.description,
            )
            for m in page.items
        ],
        caption=f"next page: --page-token {page.next_page_token}" if page.next_page_token else "",
    )


@app.command()
def show(
    ref: str = typer.Argument(..., help="fraud (the model), fraud/3, fraud@champion, ..."),
    as_json: bool = JSON,
) -> None:
    """Show a registered model and its versions, or one version in detail."""
    client = _client()
    if _is_version_ref(ref):
        mv = client.resolve(ref)
        if as_json:
            print_json(mv)
            return
        _print_version(mv)
        return
    model = client.get_registered_model(ref)
    versions = client.list_model_versions(ref, max_results=1000).items
    if as_json:
        print_json({"model": model, "versions": versions})
        return
    from rich.markup import escape

    from dockyard.cli._output import console

    console().print(
        f"[bold]{escape(model.name)}[/bold]   "
        + escape(
            f"owner {model.owner}   created {fmt_time(model.creation_time)}   "
            f"latest version {model.latest_version}"
            + ("   production needs an approval" if model.require_approval else "")
            + (f"\n{model.description}" if model.description else "")
            + (
                "\naliases " + ", ".join(f"{a} -> {v}" for a, v in sorted(model.aliases.items()))
                if model.aliases
                else ""
            )
        )
    )
    if model.tags:
        print_table("Tags", ["key", "value"], sorted(model.tags.items()))
    print_table(
        "Versions",
        ["version", "status", "aliases", "flavor", "gate", "created", "run id"],
        [
            (
                mv.version,
                _status_text(mv),
                ", ".join(sorted(mv.aliases)),
                mv.flavor,
                "" if not mv.validation else ("pass" if mv.validation.get("passed") else "fail"),
                fmt_time(mv.creation_time),
                mv.run_id,
            )
            for mv in sorted(versions, key=lambda v: v.version, reverse=True)
        ],
    )


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. champion."),
    version: int = typer.Argument(..., help="Version the alias points at."),
    as_json: bool = JSON,
) -> None:
    """Point an alias at a version (moves it if it exists)."""
    result = _client().set_alias(name, alias, version)
    if as_json:
        print_json(result if result is not None else {"name": name, "alias": alias})
        return
    typer.echo(f"{name}@{alias} -> version {version}")


@alias_app.command("delete")
def alias_delete(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Argument(..., help="Alias to delete."),
) -> None:
    """Delete an alias (its history is kept)."""
    _client().delete_alias(name, alias)
    typer.echo(f"deleted {name}@{alias}")


@alias_app.command("history")
def alias_history(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Option(None, "--alias", "-a", help="Only this alias."),
    as_json: bool = JSON,
) -> None:
    """Every move of the model's aliases: who, when, from, to."""
    events = _client().alias_history(name, alias)
    if as_json:
        print_json(events)
        return
    print_table(
        f"Alias history of {name}",
        ["time", "alias", "from", "to", "actor"],
        [
            (
                fmt_time(e.time),
                e.alias,
                "-" if e.from_version is None else e.from_version,
                "deleted" if e.to_version is None else e.to_version,
                e.actor,
            )
            for e in events
        ],
    )


_APPROVAL_WORDS = {"request": "requested", "approve": "approved", "reject": "rejected"}


def _approval_step(action: str, ref: str, comment: str, as_json: bool) -> None:
    client = _client()
    mv = _resolve(client, ref)
    if action == "request":
        step = client.request_approval(mv.name, mv.version, comment)
    elif action == "approve":
        step = client.approve(mv.name, mv.version, comment)
    else:
        step = client.reject(mv.name, mv.version, comment)
    if as_json:
        print_json(step)
        return
    typer.echo(
        f"{step.name} version {step.version}: approval {_APPROVAL_WORDS[action]} by {step.actor} "
        f"(package {step.package_digest[:12]})"
    )


COMMENT = typer.Option("", "--comment", "-c", help="Comment recorded with the step.")


@approval_app.command("request")
def approval_request(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/3."),
    comment: str = COMMENT,
    as_json: bool = JSON,
) -> None:
    """Ask for an approval of a version for production (you cannot approve it yourself)."""
    _approval_step("request", ref, comment, as_json)


@approval_app.command("approve")
def approval_approve(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/3."),
    comment: str = COMMENT,
    as_json: bool = JSON,
) -> None:
    """Approve a requested version (approver role; not its author, not the requester)."""
    _approval_step("approve", ref, comment, as_json)


@approval_app.command("reject")
def approval_reject(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/3."),
    comment: str = typer.Option(..., "--comment", "-c", help="Why it is rejected (required)."),
    as_json: bool = JSON,
) -> None:
    """Reject a requested version, saying why (withdraws an earlier approval)."""
    _approval_step("reject", ref, comment, as_json)


@approval_app.command("list")
def approval_list(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/3."),
    as_json: bool = JSON,
) -> None:
    """Every request, approval and rejection of a version, oldest first."""
    client = _client()
    mv = _resolve(client, ref)
    steps = client.approvals(mv.name, mv.version)
    if as_json:
        print_json(steps)
        return
    print_table(
        f"Approvals of {mv.name} version {mv.version}",
        ["time", "action", "by", "requester", "package", "comment"],
        [
            (
                fmt_time(a.time),
                a.action,
                a.actor,
                a.requester or "",
                a.package_digest[:12]
                + ("" if a.package_digest == mv.package_digest else " (not this package)"),
                a.comment,
            )
            for a in steps
        ],
    )


@app.command()
def policy(
    name: str = typer.Argument(..., help="Registered model name."),
    require_approval: bool = typer.Option(
        ...,
        "--require-approval/--no-require-approval",
        help="Whether promotion to production needs a four-eyes approval.",
    ),
    as_json: bool = JSON,
) -> None:
    """Set a model's approval policy (needs the approver or admin role)."""
    model = _client().set_approval_policy(name, require_approval)
    if as_json:
        print_json(model)
        return
    state = "needs" if model.require_approval else "does not need"
    typer.echo(f"{model.name}: promotion to production {state} an approval")


@app.command()
def transition(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/3."),
    to: str = typer.Argument(..., help="approved, rejected, production, deprecated or retired."),
    reason: str = typer.Option(None, "--reason", "-r", help="Why (required with an override)."),
    override_gate: bool = typer.Option(
        False, "--override-gate", help="Approve without a passed validation (needs --reason)."
    ),
    as_json: bool = JSON,
) -> None:
    """Move a version to another lifecycle status (illegal moves are refused)."""
    client = _client()
    mv = _resolve(client, ref)
    before = mv.status
    after = client.transition(mv.name, mv.version, to, reason=reason, override_gate=override_gate)
    if as_json:
        print_json(after)
        return
    typer.echo(f"{after.name} version {after.version}: {before} -> {after.status}")


@app.command()
def retire(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/3."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why it is retired."),
    replacement: int = typer.Option(None, "--replacement", help="Version that replaces it."),
    as_json: bool = JSON,
) -> None:
    """Retire a version with a reason and, optionally, its replacement."""
    client = _client()
    mv = _resolve(client, ref)
    after = client.retire(mv.name, mv.version, reason=reason, replacement_version=replacement)
    if as_json:
        print_json(after)
        return
    typer.echo(
        f"{after.name} version {after.version} retired"
        + (f", replaced by version {replacement}" if replacement is not None else "")
    )


def read_table(path: Path) -> Any:
    """A .parquet or .csv file as a pandas DataFrame."""
    from dockyard.core.errors import InvalidInput, NotFound

    if not path.is_file():
        raise NotFound(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    import pandas as pd

    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".csv", ".gz"} and path.name.lower().endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    raise InvalidInput(f"data file {path} must be .parquet or .csv (got {path.name!r})")


@app.command()
def validate(
    ref: str = typer.Argument(..., help="Candidate version, e.g. fraud/4."),
    data: Path = typer.Option(..., "--data", "-d", help="Holdout data: .parquet or .csv."),
    label: str = typer.Option(..., "--label", "-l", help="Label column in the data."),
    require: list[str] = typer.Option(
        None,
        "--require",
        help='e.g. "roc_auc>=0.80" or "roc_auc>=champion-0.01" (repeatable).',
    ),
    against: str = typer.Option(
        "champion",
        "--against",
        help="What to compare with: an alias, a status (production), latest or a version number.",
    ),
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        help="Allow loading pickle-based packages (local mode only; a server refuses it).",
    ),
    as_json: bool = JSON,
) -> None:
    """Evaluate a candidate (and the champion) on holdout data and record the gate's verdict.

    Exits with 1 when the gate fails.
    """
    client = _client()
    mv = _resolve(client, ref)
    frame = read_table(data)
    result = client.validate(
        mv.name,
        mv.version,
        frame,
        label=label,
        against=against,
        requirements=list(require or []),
        trust_pickle=trust_pickle,
    )
    if as_json:
        print_json(result)
    else:
        _print_validation(result, against)
    if not result.passed:
        raise typer.Exit(GATE_FAILED_EXIT)


def _print_validation(result: Any, against: str) -> None:
    from dockyard.cli._output import console

    champion = (
        f"{against} (version {result.against_version})"
        if result.against_version is not None
        else f"no {against}"
    )
    print_table(
        f"Gate for {result.name} version {result.version} vs {champion} on {result.num_rows} rows",
        ["requirement", "candidate", "threshold", "champion", "result", "note"],
        [
            (
                c.get("requirement"),
                c.get("candidate"),
                c.get("threshold"),
                c.get("champion"),
                "PASS" if c.get("passed") else "FAIL",
                c.get("note") or "",
            )
            for c in result.checks
        ],
    )
    cand = (result.metrics or {}).get("candidate") or {}
    champ = (result.metrics or {}).get("champion") or {}
    if cand:
        print_table(
            "Metrics",
            ["metric", "candidate", "champion"],
            [(k, cand[k], champ.get(k)) for k in sorted(cand)],
        )
    verdict = "[green]PASSED[/green]" if result.passed else "[red]FAILED[/red]"
    console().print(f"gate {verdict}")


#: Node data worth a glance in the tree, per kind (the JSON form has everything).
_NODE_DETAILS: dict[str, tuple[str, ...]] = {
    "model_version": ("status", "flavor", "source"),
    "run": ("run_id", "status", "user"),
    "dataset": ("context", "digest", "num_rows"),
    "artifact": ("size", "sha256"),
    "code": ("git_commit", "git_dirty"),
}


def _node_label(node: dict[str, Any], via: str | None = None) -> str:
    from rich.markup import escape

    kind = str(node.get("kind") or "node")
    label = str(node.get("label") or node.get("id") or "")
    if label == kind:
        label = ""
    data = node.get("data") or {}
    extras: list[str] = []
    if kind == "params" and isinstance(data.get("params"), dict):
        extras = [f"{k}={fmt_value(v)}" for k, v in sorted(data["params"].items())]
    else:
        for key in _NODE_DETAILS.get(kind, ()):
            value = data.get(key)
            if value in (None, "", [], {}):
                continue
            text = fmt_value(value)
            if key in {"digest", "sha256"}:
                text = text[:16]
            extras.append(f"{key}={text}")
    head = f"[dim]{escape(via)}[/dim] " if via else ""
    tail = f"  [dim]{escape(' '.join(extras))}[/dim]" if extras else ""
    return f"{head}[bold]{escape(kind)}[/bold] {escape(label)}{tail}"


def _lineage_tree(graph: dict[str, Any]) -> Any:
    """A Rich Tree from ``{"root", "nodes", "edges"}``: the model version at the top, what it
    was built from below it (edges ``{"from", "to", "kind"}``), each node once."""
    from rich.tree import Tree

    nodes = {str(n["id"]): n for n in graph.get("nodes", [])}
    children: dict[str, list[tuple[str, str]]] = {}
    for e in graph.get("edges", []):
        children.setdefault(str(e["from"]), []).append((str(e["to"]), str(e.get("kind", ""))))
    root = str(graph.get("root") or next(iter(nodes), ""))
    tree = Tree(_node_label(nodes.get(root, {"id": root, "kind": "model_version"})))
    seen = {root}

    def grow(branch: Any, node_id: str) -> None:
        for child, via in children.get(node_id, []):
            node = nodes.get(child, {"id": child})
            if child in seen:
                branch.add(_node_label(node, via) + " [dim](above)[/dim]")
                continue
            seen.add(child)
            grow(branch.add(_node_label(node, via)), child)

    grow(tree, root)
    for node_id, node in nodes.items():  # anything the edges do not reach from the root
        if node_id not in seen:
            seen.add(node_id)
            grow(tree.add(_node_label(node)), node_id)
    return tree


@app.command()
def lineage(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/4."),
    as_json: bool = typer.Option(False, "--json", help="Print the graph as JSON."),
) -> None:
    """Where a version came from: run, params, datasets, code, artifacts; and where it is used."""
    client = _client()
    mv = _resolve(client, ref)
    graph = client.lineage(mv.name, mv.version)
    if as_json:
        print_json(graph)
        return
    from dockyard.cli._output import console

    console().print(_lineage_tree(graph))


@app.command()
def download(
    ref: str = typer.Argument(..., help="Version, e.g. fraud/4."),
    dest: Path = typer.Option(
        None,
        "--dest",
        "-d",
        help="Destination folder, missing or empty (default: ./<name>-<version>).",
    ),
) -> None:
    """Download a version's package (every file verified against the registry's record)."""
    client = _client()
    mv = _resolve(client, ref)
    out = client.download_package(mv.name, mv.version, dest or Path(f"{mv.name}-{mv.version}"))
    typer.echo(str(out))
