"""The demo's serving steps: deploy the champion behind the endpoint ``fraud``, serve it with
the real inference server, send it synthetic traffic, and -- when a new champion was just
approved -- roll it out as a canary that the controller moves through its steps on the numbers
of the prediction log.

First run: version 1 takes 100 % of ``fraud`` (the registry marks it production) and answers
the traffic. Later runs: the new champion starts as a canary at 50 %, the controller checks its
gates on that step's traffic, moves it to 100 % and promotes it (production; the old one
deprecated) -- or rolls it back if a gate fails. Every decision is printed with its evidence.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from dockyard.core.config import Settings

ENDPOINT = "fraud"
#: The demo's canary: two steps, no bake time (the demo cannot wait minutes), 150 requests per
#: step, and the gates a team would start with.
CANARY_STEPS = "50,100"
CANARY_MIN_REQUESTS = 150
CANARY_GATES = ("error_rate<0.01", "p99_ms<250")
_TRAFFIC_PER_STEP = 400
_WAIT_SECONDS = 60.0


def serve_and_roll_out(
    settings: Settings,
    registry: dict[str, Any],
    traffic: pd.DataFrame,
    seed: int = 0,
    *,
    monitor: bool = True,
) -> dict[str, Any]:
    """Deploy (or canary) the demo's champion and send it ``traffic`` rows through a real
    inference server on loopback; with ``monitor``, then drifted traffic, labels and a monitor
    run (:mod:`dockyard._demo_monitoring`). Returns what happened (endpoint, decisions,
    counts, the monitor run)."""
    from rich.console import Console

    from dockyard._loopback import LoopbackServer
    from dockyard.backend import Backend
    from dockyard.cli._output import print_table
    from dockyard.governance.audit import Actor
    from dockyard.server.serve_app import create_serve_app
    from dockyard.serving.controller import CanaryController

    console = Console(stderr=True)
    out: dict[str, Any] = {"endpoint": ENDPOINT, "decisions": []}
    champion = registry.get("champion")
    if champion is None:
        console.print("no approved champion: nothing to deploy")
        return out
    settings = settings.with_overrides(
        auth="off",  # the demo's own loopback server; `dockyard serve` decides for itself
        allowed_hosts="127.0.0.1,localhost",
        serve_poll_seconds=0.2,
        predlog_flush_seconds=0.2,
        canary_interval=0,
    )
    backend = Backend.open(settings)
    try:
        actor = Actor.local(settings.user)
        endpoints = backend.endpoints(actor)
        ref = f"fraud/{champion}"
        current = {e.name: e for e in endpoints.list_endpoints()}.get(ENDPOINT)
        rows: list[tuple[str, str]] = []
        if current is None:
            ep = endpoints.deploy(ENDPOINT, ref, description="dockyard demo", reason="demo")
            rows.append(("deploy", f"{ref} takes 100 % of endpoint {ENDPOINT!r}"))
        elif current.policy.primary_ref.version == champion:
            ep = current
            rows.append(("deploy", f"{ref} already serves 100 % of {ENDPOINT!r}"))
        else:
            if current.policy.canary is not None:  # a canary left by an interrupted run
                endpoints.rollback(ENDPOINT, reason="demo: an earlier canary was left running")
            ep = endpoints.deploy(
                ENDPOINT,
                ref,
                mode="canary",
                steps=CANARY_STEPS,
                bake=0,
                min_requests=CANARY_MIN_REQUESTS,
                gates=list(CANARY_GATES),
                reason="demo: the new champion",
            )
            rows.append(
                (
                    "canary",
                    f"{ref} as a canary of {ep.policy.primary_ref} on {ENDPOINT!r}: steps "
                    f"{CANARY_STEPS} %, {CANARY_MIN_REQUESTS} requests per step, gates "
                    f"{', '.join(CANARY_GATES)}",
                )
            )
        records = json.loads(traffic.to_json(orient="records"))
        sent = answered = 0
        by_variant: dict[str, int] = {}
        controller = CanaryController(backend, holder="dockyard-demo")
        app = create_serve_app(settings, endpoints=[ENDPOINT])
        with LoopbackServer(app, name="dockyard-demo-serve") as server:
            _wait_ready(server.url)
            for _round in range(len(CANARY_STEPS.split(",")) + 1):
                version = backend.endpoints(actor).get_endpoint(ENDPOINT).version
                _wait_policy(server.url, version)
                counts = _traffic(server.url, records, _TRAFFIC_PER_STEP, seed + _round)
                sent += _TRAFFIC_PER_STEP
                answered += sum(counts.values())
                for k, v in counts.items():
                    by_variant[k] = by_variant.get(k, 0) + v
                ep = backend.endpoints(actor).get_endpoint(ENDPOINT)
                if ep.policy.canary is None:
                    break
                _wait_logged(backend, ep, sent)
                controller.run_once()
                [decision] = backend.endpoints(actor).list_decisions(ENDPOINT, limit=1)
                out["decisions"].append((decision.action, decision.reason))
                rows.append((decision.action, f"{decision.reason}; {_evidence(decision)}"))
            controller.stop()
            ep = backend.endpoints(actor).get_endpoint(ENDPOINT)
            split = ", ".join(f"{k} {v}" for k, v in sorted(by_variant.items()))
            rows.append(("traffic", f"{answered} of {sent} requests answered ({split})"))
            rows.append(("now", ep.policy.describe()))
            rows.append(("runtime", _runtime_row(server.url)))
            out.update(
                sent=sent, answered=answered, by_variant=by_variant, policy=ep.policy.to_dict()
            )
            print_table(
                f"Serving: endpoint {ENDPOINT!r}",
                ["step", "what happened"],
                rows,
                caption="Next: dockyard serve fraud; dockyard endpoints show fraud; "
                "dockyard endpoints decisions fraud; dockyard logs stats -e fraud",
            )
            if monitor:
                from dockyard._demo_monitoring import drift_and_monitor

                out["monitoring"] = drift_and_monitor(
                    backend, actor, server.url, settings.home_path, seed=seed
                )
        return out
    finally:
        backend.close()


def _runtime_row(url: str) -> str:
    """What answers the endpoint's primary now: ONNX Runtime (compiled) or scikit-learn."""
    from dockyard.serving.compiled import can_compile

    status, meta = _get(url, f"/v2/models/{ENDPOINT}")
    runtime = (meta or {}).get("parameters", {}).get("runtime", "?") if status == 200 else "?"
    if runtime == "onnxruntime":
        return "the primary answers from its compiled ONNX Runtime form (checked against sklearn)"
    if runtime == "sklearn" and not can_compile():
        return (  # the table renders markup: [serving] would vanish as a tag
            "scikit-learn; pip install 'dockyard\\[serving]' and `dockyard serve` compiles it "
            "to ONNX Runtime (faster, ready in under a second)"
        )
    return f"{runtime} (a compiled form is being made in the background)"


def _evidence(decision: Any) -> str:
    """The numbers a decision was taken on, in a line."""
    ev = decision.evidence

    def side(name: str, stats: dict[str, Any] | None) -> str:
        if not stats:
            return f"{name}: no traffic"
        p99 = stats.get("p99_ms")
        return f"{name} {stats['requests']} requests, {stats['errors']} failed" + (
            f", p99 {p99:.1f} ms" if p99 is not None else ""
        )

    return f"{side('canary', ev.get('canary'))}; {side('primary', ev.get('primary'))}"


def _get(url: str, path: str) -> tuple[int, Any]:
    import httpx

    r = httpx.get(url + path, timeout=10)
    return r.status_code, (r.json() if r.content else None)


def _wait_ready(url: str) -> None:
    from dockyard.core.errors import Unavailable

    deadline = time.monotonic() + _WAIT_SECONDS
    while _get(url, "/v2/health/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise Unavailable("the demo's inference server did not become ready")
        time.sleep(0.05)


def _wait_policy(url: str, version: int) -> None:
    """Until the server serves policy ``version`` (it polls the store)."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        status, body = _get(url, "/endpoints")
        items = (body or {}).get("endpoints", []) if status == 200 else []
        if any(e.get("name") == ENDPOINT and e.get("policy_version") == version for e in items):
            return
        time.sleep(0.05)


def wait_logged(backend: Any, since: int | None, columns: list[str], done: Any) -> None:
    """Until ``done(table)`` holds for the endpoint's log since ``since`` (read with
    ``columns``); the demo's servers flush it every 0.2 s."""
    from dockyard.serving.predlog import read_predictions

    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        table = read_predictions(
            backend.artifacts.root_uri,
            ENDPOINT,
            since=since,
            cipher=backend.artifacts.cipher,
            columns=columns,
        )
        if done(table):
            return
        time.sleep(0.1)


def _wait_logged(backend: Any, ep: Any, at_least: int) -> None:
    """Until the prediction log holds the step's canary requests."""
    canary = ep.policy.canary.variant if ep.policy.canary else None
    since = ep.policy.canary.step_started if ep.policy.canary else None

    def done(table: Any) -> bool:
        n = sum(1 for v in table["variant"].to_pylist() if v == canary) if table.num_rows else 0
        return canary is None or n >= min(CANARY_MIN_REQUESTS, at_least)

    wait_logged(backend, since, ["request_id", "row", "variant"], done)


def _traffic(url: str, records: list[dict[str, Any]], n: int, seed: int) -> dict[str, int]:
    """``n`` one-row requests from 8 threads, each with a customer key (sticky A/B)."""
    import random

    import httpx

    rng = random.Random(seed)
    picks = [rng.randrange(len(records)) for _ in range(n)]
    counts: dict[str, int] = {}

    def send(client: httpx.Client, i: int) -> str | None:
        r = client.post(
            f"{url}/endpoints/{ENDPOINT}/predict",
            json=[records[i]],
            headers={"X-Dockyard-Key": f"customer-{i}"},
        )
        return r.headers.get("x-dockyard-variant") if r.status_code == 200 else None

    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        for variant in pool.map(lambda i: send(client, i), picks):
            if variant is not None:
                counts[variant] = counts.get(variant, 0) + 1
    return counts
