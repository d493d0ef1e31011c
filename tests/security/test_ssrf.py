"""SSRF: the server never fetches a URL a request names.

Every request field that accepts a URI -- a model version's ``source``, the ``uri`` a model
reference is resolved from, a dataset input's ``source``, artifact paths, tag and param values,
a package's ``requirements.txt`` -- gets loopback, link-local (cloud metadata), private-range,
IPv6 and name-that-resolves-to-loopback targets, and a redirect trick (a URL on a local server
that would bounce to the metadata address). A real HTTP server listens on loopback for the
whole test and must receive zero requests; on top of that, every outbound ``connect`` and DNS
lookup made in this process while the app handles the requests is recorded, and there must be
none (the app runs in-process; SQLite needs no socket).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from ._target import API, Target, assert_envelope


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def _any(self) -> None:
        type(self).hits.append(f"{self.command} {self.path}")
        # The redirect trick: whatever asked is sent on to the cloud metadata address.
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_PUT = _any

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[HTTPServer, list[str]]]:
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def network_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connect() and DNS lookup this process makes (the app runs in-process)."""
    seen: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        seen.append(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"getaddrinfo {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


def targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/model",
        f"https://127.0.0.1:{port}/model",
        f"http://localhost:{port}/model",
        f"http://[::1]:{port}/model",
        f"http://[::ffff:127.0.0.1]:{port}/model",
        f"http://2130706433:{port}/model",
        f"http://0x7f000001:{port}/model",
        f"http://0:{port}/model",
        f"http://127.1:{port}/model",
        f"http://127.0.0.1.nip.io:{port}/model",
        f"http://user@127.0.0.1:{port}/model",
        f"http://evil.example@127.0.0.1:{port}/model",
        f"http://127.0.0.1:{port}/redirect?to=http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/model",
        "http://192.168.1.1/model",
        "http://172.16.0.1/model",
        f"//127.0.0.1:{port}/model",
        f"127.0.0.1:{port}/model",
        f"gopher://127.0.0.1:{port}/_GET",
        f"ftp://127.0.0.1:{port}/model",
        f"s3://127.0.0.1:{port}/bucket/model",
        f"runs:/http://127.0.0.1:{port}/model",
        f"models:/http://127.0.0.1:{port}/1",
    ]


def _assert_nothing_fetched(hits: list[str], network: list[str]) -> None:
    assert hits == [], f"the server fetched a user-supplied URL: {hits}"
    assert network == [], f"the app opened connections or resolved names: {network}"


def test_registry_sources_are_never_fetched(
    target: Target, listener: tuple[HTTPServer, list[str]], network_log: list[str]
) -> None:
    server, hits = listener
    before = target.snapshot()
    for url in targets(server.server_address[1]):
        r = target.client.post(f"{API}/models/ssrf/versions", json={"source": url})
        assert_envelope(r.status_code, r.json(), codes=("invalid_input", "not_found"))
        assert r.status_code in (404, 422), r.text
    _assert_nothing_fetched(hits, network_log)
    assert target.snapshot() == before


def test_model_uris_are_never_fetched(
    target: Target, listener: tuple[HTTPServer, list[str]], network_log: list[str]
) -> None:
    server, hits = listener
    for url in targets(server.server_address[1]):
        r = target.client.get(f"{API}/models/resolve", params={"uri": url})
        assert_envelope(r.status_code, r.json())
    _assert_nothing_fetched(hits, network_log)


def test_artifact_paths_that_are_urls_are_refused_unfetched(
    target: Target, listener: tuple[HTTPServer, list[str]], network_log: list[str]
) -> None:
    server, hits = listener
    before = target.snapshot()
    for url in targets(server.server_address[1]):
        spelled = quote(url, safe="/:")
        for method, route in (
            ("PUT", f"/runs/{{run}}/artifacts/{spelled}"),
            ("GET", f"/runs/{{run}}/artifacts/{spelled}"),
            ("GET", f"/runs/{{run}}/artifacts?path={quote(url, safe='')}"),
            ("GET", f"/models/fraud/versions/1/files/{spelled}"),
        ):
            status, _h, payload = target.raw(method, target.fmt(API + route), b"x")
            assert_envelope(status, json.loads(payload))
    _assert_nothing_fetched(hits, network_log)
    assert target.snapshot() == before


def test_urls_in_recorded_text_are_stored_never_fetched(
    target: Target, listener: tuple[HTTPServer, list[str]], network_log: list[str]
) -> None:
    """Dataset sources, tags, params and descriptions may hold URLs as lineage; the server
    records them as text and never opens them."""
    server, hits = listener
    c = target.client
    run = c.post(f"{API}/runs", json={"experiment_id": target.ids["exp"]}).json()["run_id"]
    urls = targets(server.server_address[1])
    inputs = [
        {"name": f"d{i}", "digest": f"x{i}", "context": "train", "source": u}
        for i, u in enumerate(urls)
    ]
    assert c.post(f"{API}/runs/{run}/inputs", json={"inputs": inputs}).status_code == 204
    tags = {f"t{i}": u for i, u in enumerate(urls)}
    r = c.post(f"{API}/runs/{run}/batch", json={"tags": tags, "params": tags})
    assert r.status_code == 204, r.text
    r = c.patch(f"{API}/models/fraud", json={"description": urls[0]})
    assert r.status_code == 200, r.text
    r = c.put(f"{API}/models/fraud/tags/homepage", json={"value": urls[1]})
    assert r.status_code == 204, r.text
    assert c.get(f"{API}/runs/{run}").status_code == 200
    _assert_nothing_fetched(hits, network_log)


def test_package_requirements_naming_urls_are_never_installed_or_fetched(
    target: Target, listener: tuple[HTTPServer, list[str]], network_log: list[str], package: Any
) -> None:
    """A package whose requirements point pip at a local index or a wheel URL: registering
    and validating it on the server fetches nothing (the server never installs anything)."""
    from dockyard.registry.packaging.manifest import read_manifest, sha256_bytes

    server, hits = listener
    port = server.server_address[1]
    files = {p.relative_to(package).as_posix(): p.read_bytes() for p in package.rglob("*")}
    files = {k: v for k, v in files.items() if (package / k).is_file()}
    requirements = (
        f"--extra-index-url http://127.0.0.1:{port}/simple\n"
        f"evil @ http://127.0.0.1:{port}/evil-1.0-py3-none-any.whl\n"
        f"-e git+http://127.0.0.1:{port}/repo.git#egg=evil\n"
    ).encode()
    manifest = read_manifest(package).to_dict()
    req_name = next(k for k in files if k.startswith("requirements"))
    files[req_name] = requirements
    manifest["files"][req_name] = {"sha256": sha256_bytes(requirements), "size": len(requirements)}
    manifest["requirements"] = requirements.decode().splitlines()
    files["manifest.json"] = json.dumps(manifest).encode()
    listing = {}
    for path, data in files.items():
        r = target.client.post(f"{API}/blobs", content=data)
        assert r.status_code == 201, r.text
        listing[path] = r.json()
    r = target.client.post(f"{API}/models/reqs/versions", json={"files": listing})
    # Either refused as an invalid package or registered; never fetched.
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        body = {
            "data": {"columns": {"a": [0.5, -0.5], "b": [0.1, 0.2], "label": [1, 0]}},
            "label": "label",
            "against": None,
        }
        v = target.client.post(f"{API}/models/reqs/versions/1/validate", json=body)
        assert v.status_code in (201, 422), v.text
    _assert_nothing_fetched(hits, network_log)
