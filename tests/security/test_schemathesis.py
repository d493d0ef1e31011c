"""Property-based fuzzing of the whole OpenAPI spec with schemathesis.

Every operation of ``/api/v1/openapi.json`` gets a bounded number of generated requests
(valid and invalid ones), sent in-process to the ASGI app on a fresh SQLite home seeded with an
experiment, a run (with an artifact) and a registered model. Checks: no 5xx, and every response
conforms to the spec (status code documented, content type, body schema, headers), plus
schemathesis' other default checks.

``DOCKYARD_FUZZ_EXAMPLES`` raises the number of examples per operation (CI default: small, so
the whole module stays well under a minute).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import checks  # noqa: E402

from dockyard.backend import Backend  # noqa: E402
from dockyard.core.config import load_settings  # noqa: E402
from dockyard.server.app import create_app  # noqa: E402

from ._target import make_target  # noqa: E402

EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "6"))
#: No 5xx, and every response documented in the spec: status code, content type, body schema,
#: headers, and the Allow header of a 405. (Not ``positive_data_acceptance``: the spec gives
#: each field's JSON type, while value rules -- a run id is 32 hex digits, a name has no '/' --
#: live in the services, so a schema-valid request is often rightly refused with a 4xx.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.allow_header_conformance,
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, package: Path) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("fuzz")
    # Seed through the usual client, then hand schemathesis the same app with its backend open.
    gen = make_target(base, package)
    target = next(gen)
    app = create_app(load_settings(overrides={"home": str(target.home)}, environ={}))
    backend = Backend.open(load_settings(overrides={"home": str(target.home)}, environ={}))
    app.state.backend = backend  # what the lifespan would do
    try:
        yield app
    finally:
        backend.close()
        gen.close()


def _operations() -> list[str]:
    """Every operation of the spec, from an app built without a store (nothing is opened)."""
    settings = load_settings(overrides={"home": "/nonexistent-dockyard-home"}, environ={})
    spec = create_app(settings).openapi()
    methods = ("get", "put", "post", "patch", "delete")
    return [
        f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item if m in methods
    ]


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_app)


@pytest.mark.parametrize("label", _operations())
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_operation_conforms_to_the_spec(api_schema: Any, label: str, mode: str) -> None:
    """Generated requests (valid ones, and ones that break the schema) to one operation: no
    5xx, and every answer documented and shaped as the spec says."""
    from schemathesis import GenerationMode

    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers={"host": "testserver"}, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        if mode == "positive":
            raise
        pytest.skip(f"{label} has no parameter a wrong value could be generated for")
