"""`dockyard deploy` and `dockyard endpoints`: endpoints and their traffic policies.

A model version is named ``fraud/5``, ``fraud@champion``, ``fraud/production`` or
``models:/fraud/5``; the registry resolves it. Only approved (or production) versions take
live traffic; any version that is not rejected or retired may shadow.

``dockyard deploy`` adds a version to an endpoint in one of four ways::

    dockyard deploy fraud@champion --endpoint fraud           # replace: 100 % (creates it)
    dockyard deploy --endpoint fraud --ab fraud/6:50          # an A/B variant at 50 %
    dockyard deploy --endpoint fraud --shadow fraud/7         # a shadow: a copy, never answers
    dockyard deploy fraud/5 --endpoint fraud --canary 5,25,50,100 --bake 10m \\
        --gate "error_rate<0.01" --gate "p99_ms<50"           # a canary through the steps

The model is the argument for a replacement or a canary, and the value of ``--ab``
(``MODEL:WEIGHT``) or ``--shadow``; ``--bake``, ``--min-requests`` and ``--gate`` go with
``--canary``. ``dockyard endpoints list|show|history|decisions|weights|remove|promote|
rollback|delete`` look at and change what is deployed.

Every command calls the SDK client (:class:`dockyard.client.client.Client`), so it works on the
local store and against a server alike, with the endpoint service's rules in both.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from dockyard.cli import kubernetes
from dockyard.cli._output import console, fmt_time, fmt_value, print_json
from dockyard.cli.models import print_table

app = typer.Typer(
    help="Endpoints: traffic policies, A/B variants, shadows, canaries, promote and roll back.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
REASON = typer.Option(None, "--reason", "-r", help="Why (kept with the policy version).")
LIMIT = typer.Option(50, "--limit", help="At most this many, newest first.")


def _client() -> Any:
    from dockyard.client.client import Client

    return Client()


def _bad(message: str) -> Exception:
    from dockyard.core.errors import InvalidInput

    return InvalidInput(message)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _summary(ep: Any) -> str:
    return f"endpoint {ep.name} (policy version {ep.version}): {ep.policy.describe()}"


# -- deploy ------------------------------------------------------------------------------------


def deploy(
    model: str = typer.Argument(
        None,
        help="The version to deploy (fraud/5, fraud@champion, fraud/production): it replaces "
        "what the endpoint serves, or with --canary becomes its canary.",
        show_default=False,
    ),
    endpoint: str = typer.Option(..., "--endpoint", "-e", help="The endpoint."),
    ab: str = typer.Option(
        None,
        "--ab",
        metavar="MODEL:WEIGHT",
        help="Add an A/B variant taking WEIGHT percent of live traffic (fraud/6:50); the "
        "others are scaled down in proportion.",
    ),
    shadow: str = typer.Option(
        None,
        "--shadow",
        metavar="MODEL",
        help="Add a shadow: it gets a copy of every request and never answers (fraud/7).",
    ),
    canary: str = typer.Option(
        None,
        "--canary",
        metavar="STEPS",
        help="Roll MODEL out as a canary through these percents (5,25,50,100).",
    ),
    bake: str = typer.Option(
        None, "--bake", help="With --canary: time per step (90s, 10m, 2h; default 10m)."
    ),
    min_requests: int = typer.Option(
        None, "--min-requests", help="With --canary: requests per step (default 100)."
    ),
    gate: list[str] = typer.Option(
        None,
        "--gate",
        help='With --canary, repeatable: "error_rate<0.01", "p99_ms<50", '
        '"p99_ms<=primary*1.2" (default error_rate<0.01).',
    ),
    variant: str = typer.Option(
        None, "--variant", help="Name of the new variant (default: <model>-<version>)."
    ),
    reason: str = REASON,
    description: str = typer.Option("", "--description", help="When it creates the endpoint."),
    key_field: str = typer.Option(
        None, "--key-field", help="JSON field of a request that keeps its caller sticky."
    ),
    as_json: bool = JSON,
) -> None:
    """Deploy a model version to an endpoint: replace, --ab, --shadow or --canary."""
    mode, ref, weight = _mode(model, ab, shadow, canary)
    if mode != "canary" and (bake is not None or min_requests is not None or gate):
        raise _bad("--bake, --min-requests and --gate only apply with --canary")
    ep = _client().deploy(
        endpoint,
        ref,
        mode=mode,
        weight=weight,
        variant=variant,
        steps=canary,
        bake=bake,
        min_requests=min_requests,
        gates=list(gate) if gate else None,
        description=description,
        reason=reason,
        key_field=key_field,
    )
    if as_json:
        print_json(ep)
        return
    verb = {
        "replace": "created" if ep.version == 1 else "deployed",
        "ab": "A/B variant added",
        "shadow": "shadow added",
        "canary": "canary started",
    }[mode]
    typer.echo(f"{verb}: {_summary(ep)}")


def _mode(
    model: str | None, ab: str | None, shadow: str | None, canary: str | None
) -> tuple[str, str, int | None]:
    """(mode, model, weight) from the command line; one way to deploy at a time."""
    chosen = [opt for opt, v in (("--ab", ab), ("--shadow", shadow)) if v is not None]
    if canary is not None:
        chosen.append("--canary")
    if len(chosen) > 1:
        raise _bad(f"choose one of --ab, --shadow and --canary, not {' and '.join(chosen)}")
    if ab is not None or shadow is not None:
        if model is not None:
            raise _bad(
                f"{chosen[0]} names the model itself: drop the argument {model!r} "
                "(e.g. dockyard deploy --endpoint fraud --ab fraud/6:50)"
            )
        if shadow is not None:
            return "shadow", shadow, None
        assert ab is not None
        ref, sep, weight = ab.rpartition(":")
        if not sep or not ref or not weight.strip().isdigit():
            raise _bad(f"--ab takes MODEL:WEIGHT, e.g. fraud/6:50, got {ab!r}")
        return "ab", ref, int(weight)
    if model is None:
        raise _bad(
            "name the model to deploy: dockyard deploy fraud/5 --endpoint NAME "
            "(or --ab fraud/6:50, --shadow fraud/7)"
        )
    return ("canary" if canary is not None else "replace"), model, None


# -- endpoints ---------------------------------------------------------------------------------


def _role(policy: Any, name: str) -> str:
    if name in policy.shadows:
        return "shadow"
    if name == policy.primary:
        return "primary"
    if policy.canary is not None and policy.canary.variant == name:
        return "canary"
    return "variant"


def _canary_text(policy: Any) -> str:
    c = policy.canary
    if c is None:
        return ""
    return (
        f"canary {c.variant}: step {c.step + 1}/{len(c.steps)} at {c.percent} % "
        f"(steps {', '.join(str(s) for s in c.steps)}), bake {_duration(c.bake_seconds)} and "
        f"at least {c.min_requests} requests per step, step started {fmt_time(c.step_started)}; "
        f"gates: {', '.join(str(g) for g in c.gates) or 'none'}"
    )


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List the endpoints you may read, with their traffic."""
    items = _client().list_endpoints()
    if as_json:
        print_json(items)
        return
    print_table(
        "Endpoints",
        ["name", "primary", "traffic", "version", "last good", "updated", "description"],
        [
            (
                e.name,
                str(e.policy.primary_ref),
                e.policy.describe(),
                e.version,
                e.last_good_version,
                fmt_time(e.updated),
                e.description,
            )
            for e in items
        ],
    )


@app.command()
def show(name: str = typer.Argument(..., help="The endpoint."), as_json: bool = JSON) -> None:
    """Show an endpoint: its variants (model, version, weight, role), canary and gates."""
    ep = _client().get_endpoint(name)
    if as_json:
        print_json(ep)
        return
    p = ep.policy
    lines = [
        f"{ep.name}   policy version {ep.version}   last good version "
        f"{ep.last_good_version if ep.last_good_version is not None else '-'}",
        f"created {fmt_time(ep.created)} by {ep.created_by}   updated {fmt_time(ep.updated)}"
        + (f"   ({ep.reason})" if ep.reason else ""),
    ]
    if p.key_field:
        lines.append(f"sticky key: header X-Dockyard-Key or the request field {p.key_field!r}")
    if ep.description:
        lines.append(ep.description)
    console().print("\n".join(lines), markup=False, highlight=False)
    rows = [
        (v, ref.model, ref.version, f"{p.weights[v]} %", _role(p, v))
        for v, ref in sorted(p.variants.items(), key=lambda kv: (-p.weights[kv[0]], kv[0]))
    ]
    rows += [(v, ref.model, ref.version, "copy", "shadow") for v, ref in sorted(p.shadows.items())]
    print_table("Variants", ["variant", "model", "version", "weight", "role"], rows)
    if p.canary is not None:
        console().print(_canary_text(p), markup=False, highlight=False)


@app.command()
def history(
    name: str = typer.Argument(..., help="The endpoint."), limit: int = LIMIT, as_json: bool = JSON
) -> None:
    """Past policy versions, newest first (rollback restores the last good one)."""
    from dockyard.core.serving_entities import TrafficPolicy

    items = _client().policy_history(name, limit)
    if as_json:
        print_json(items)
        return
    print_table(
        f"Policy history of {name}",
        ["version", "created", "by", "traffic", "reason"],
        [
            (
                h["version"],
                fmt_time(h["created"]),
                h["created_by"],
                TrafficPolicy.from_dict(h["policy"]).describe(),
                h["reason"],
            )
            for h in items
        ],
    )


def _evidence(evidence: Any, width: int = 120) -> str:
    parts = []
    for k, v in evidence.items():
        if isinstance(v, dict | list):
            v = json.dumps(v, separators=(",", ":"), default=str)
        parts.append(f"{k}={fmt_value(v)}")
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 3] + "..."


@app.command()
def decisions(
    name: str = typer.Argument(..., help="The endpoint."), limit: int = LIMIT, as_json: bool = JSON
) -> None:
    """Decisions on the endpoint, newest first: who or what acted, why, on what evidence."""
    items = _client().list_decisions(name, limit)
    if as_json:
        print_json(items)
        return
    print_table(
        f"Decisions on {name}",
        ["time", "actor", "action", "versions", "reason", "evidence"],
        [
            (
                fmt_time(d.time),
                d.actor,
                d.action,
                f"{'' if d.from_version is None else d.from_version} -> {d.to_version}".strip(),
                d.reason,
                _evidence(d.evidence),
            )
            for d in items
        ],
    )


def _weights(pairs: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        variant, sep, weight = pair.rpartition("=")
        if not sep or not variant or not weight.strip().isdigit():
            raise _bad(f"weights are VARIANT=PERCENT, e.g. fraud-5=80 fraud-6=20, got {pair!r}")
        out[variant] = int(weight)
    return out


@app.command()
def weights(
    name: str = typer.Argument(..., help="The endpoint."),
    pairs: list[str] = typer.Argument(
        ..., metavar="VARIANT=PERCENT...", help="Every live variant's weight, summing to 100."
    ),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """Set the live variants' weights: `dockyard endpoints weights fraud fraud-5=80 fraud-6=20`."""
    ep = _client().set_weights(name, _weights(pairs), reason)
    print_json(ep) if as_json else typer.echo(f"weights set: {_summary(ep)}")


@app.command()
def remove(
    name: str = typer.Argument(..., help="The endpoint."),
    variant: str = typer.Argument(..., help="A shadow, or a live variant other than the primary."),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """Take a variant or shadow off an endpoint (its weight goes to the others)."""
    ep = _client().remove_variant(name, variant, reason)
    print_json(ep) if as_json else typer.echo(f"removed {variant}: {_summary(ep)}")


@app.command()
def promote(
    name: str = typer.Argument(..., help="The endpoint."),
    variant: str = typer.Argument(
        None, help="The live variant (default: the running canary, or the only other one)."
    ),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """Make a live variant the primary at 100 % (the registry marks it production)."""
    ep = _client().promote(name, variant, reason)
    print_json(ep) if as_json else typer.echo(f"promoted {ep.policy.primary}: {_summary(ep)}")


@app.command()
def rollback(
    name: str = typer.Argument(..., help="The endpoint."),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """Restore the last good policy (the one before the latest change, or before a canary)."""
    ep = _client().rollback(name, reason)
    print_json(ep) if as_json else typer.echo(f"rolled back: {_summary(ep)}")


@app.command()
def delete(
    name: str = typer.Argument(..., help="The endpoint."),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """Delete an endpoint and its policy history (the audit log keeps the record)."""
    _client().delete_endpoint(name, reason)
    print_json({"deleted": name}) if as_json else typer.echo(f"deleted endpoint {name}")


# `dockyard endpoints export`: its own module (the Kubernetes writer), one command here.
app.command("export")(kubernetes.export)
