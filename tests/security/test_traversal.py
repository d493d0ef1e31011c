"""Path traversal in every path or URI field of every route, in every spelling.

MLflow's published traversal and local-file-inclusion bugs came from user text that reached a
file system join: artifact paths, model sources, run ids in URLs, ``file:`` URIs, ``;`` and
``?`` smuggled past a check. Here each field that names something gets every escaping form
(``../``, ``..\\``, percent-encoded once and twice, ``;``, ``?`` and ``#`` smuggling, ``//``,
scheme-less and ``file:`` URIs, absolute and Windows drive paths, NUL bytes, Unicode look-alikes)
and each request must:

* be answered with a 4xx in the JSON error envelope,
* never return the sentinel file's content (``outside/secret.txt``, beside the Dockyard home),
* leave the sentinel folder byte for byte (and mtime) unchanged, and
* leave the store unchanged (metadata, registry, blobs on disk, temporary files).

Requests go to the ASGI app as raw targets (decoded once, as uvicorn does) because HTTP clients
would normalise ``..`` away before sending.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ._target import (
    API,
    SECRET,
    Target,
    assert_envelope,
    make_target,
)

# Escapes relative to the artifact root (<home>/artifacts) reach <base>/outside/secret.txt.
UP = "../../outside/secret.txt"

#: The request-target spelling of each attack on a path field (after one decoding by the
#: server, most become the escape itself).
PATH_ATTACKS: dict[str, str] = {
    "dotdot": UP,
    "dotdot_deep": "a/../../../outside/secret.txt",
    "backslash": "..%5C..%5Coutside%5Csecret.txt",
    "backslash_raw": "..\\..\\outside\\secret.txt",
    "encoded_once": "%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
    "encoded_twice": "%252e%252e%252f%252e%252e%252foutside%252fsecret.txt",
    "encoded_thrice": "%25252e%25252e%25252f",
    "encoded_dots_only": "%2e%2e/%2e%2e/outside/secret.txt",
    "semicolon": "..;/..;/outside/secret.txt",
    "semicolon_param": "dir;x=/../../outside/secret.txt",
    "question_smuggle": "x%3F/../../outside/secret.txt",
    "hash_smuggle": "x%23/../../outside/secret.txt",
    "double_slash": "dir//..//..//outside/secret.txt",
    "scheme_less": "//evil.example/outside/secret.txt",
    "file_uri": "file:///outside/secret.txt",
    "file_uri_relative": "file:../../outside/secret.txt",
    "absolute": "/etc/passwd",
    "absolute_encoded": "%2Fetc%2Fpasswd",
    "windows_drive": "C:%5CWindows%5Cwin.ini",
    "windows_drive_slash": "C:/Windows/win.ini",
    "unc": "%5C%5Cserver%5Cshare%5Cx",
    "nul": "dir/file.txt%00.png",
    "nul_dotdot": "x%00/../../outside/secret.txt",
    "fullwidth_dots": "%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/outside/secret.txt",
    "home": "~/.ssh/id_rsa",
    "dot_segment": "./dir/file.txt",
    "trailing_dots": ".../outside",
}


def _absolute_attacks(t: Target) -> dict[str, str]:
    """Forms that name the real sentinel by its absolute path (known to an attacker who
    guesses the layout)."""
    abs_path = str(t.sentinel)
    return {
        "abs_sentinel": abs_path,
        "abs_sentinel_encoded": quote(abs_path, safe=""),
        "abs_file_uri": "file://" + abs_path,
    }


def attempt(
    t: Target,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    codes: tuple[str, ...] | None = None,
    json_body: bool = False,
) -> dict[str, Any]:
    """Send one raw request; assert the refusal and that nothing leaked or changed."""
    before_store = t.snapshot()
    before_outside = t.outside_state()
    headers = [(b"host", b"testserver")]
    if json_body:
        headers.append((b"content-type", b"application/json"))
    status, _headers, payload = t.raw(method, t.fmt(target), body, headers)
    assert SECRET not in payload
    decoded = json.loads(payload)
    assert_envelope(status, decoded, codes=codes)
    assert t.outside_state() == before_outside, "the sentinel folder changed"
    assert sorted(os.listdir(t.outside)) == ["secret.txt"]
    assert t.snapshot() == before_store, f"{method} {target} changed the store"
    return decoded


ATTACK_IDS = sorted(PATH_ATTACKS)


# -- artifact paths: write, read, list -----------------------------------------------------------


@pytest.mark.parametrize("attack", ATTACK_IDS)
def test_artifact_write_refuses_every_escape(target: Target, attack: str) -> None:
    attempt(target, "PUT", f"{API}/runs/{{run}}/artifacts/{PATH_ATTACKS[attack]}", b"pwned")


@pytest.mark.parametrize("attack", ATTACK_IDS)
def test_artifact_read_refuses_every_escape(target: Target, attack: str) -> None:
    attempt(target, "GET", f"{API}/runs/{{run}}/artifacts/{PATH_ATTACKS[attack]}")


@pytest.mark.parametrize("attack", ATTACK_IDS)
def test_artifact_list_refuses_every_escape(target: Target, attack: str) -> None:
    # In the query string: the spelling reaches the handler decoded once, like the path.
    spelled = PATH_ATTACKS[attack].replace("?", "%3F").replace("#", "%23")
    spelled = spelled.replace("&", "%26").replace(" ", "%20")
    body = attempt(target, "GET", f"{API}/runs/{{run}}/artifacts?path={spelled}")
    assert body["error"]["code"] in {"unsafe_path", "invalid_input", "not_found"}


def test_artifact_absolute_paths_to_the_real_sentinel_are_refused(target: Target) -> None:
    for spelled in _absolute_attacks(target).values():
        for method, tail in (("PUT", "/{p}"), ("GET", "/{p}"), ("GET", "?path={p}")):
            url = f"{API}/runs/{{run}}/artifacts" + tail.replace("{p}", quote(spelled, safe="/:"))
            attempt(target, method, url, b"pwned" if method == "PUT" else b"")


# -- ids and names in URL segments: runs, experiments, models, aliases, tags, files ---------------

SEGMENT_ROUTES = [
    ("GET", "/runs/{X}"),
    ("PATCH", "/runs/{X}"),
    ("POST", "/runs/{X}/end"),
    ("POST", "/runs/{X}/delete"),
    ("POST", "/runs/{X}/restore"),
    ("POST", "/runs/{X}/batch"),
    ("POST", "/runs/{X}/inputs"),
    ("DELETE", "/runs/{run}/tags/{X}"),
    ("GET", "/runs/{run}/metrics/{X}/history"),
    ("PUT", "/runs/{X}/artifacts/f.txt"),
    ("GET", "/runs/{X}/artifacts/f.txt"),
    ("GET", "/runs/{X}/artifacts"),
    ("GET", "/experiments/{X}"),
    ("PATCH", "/experiments/{X}"),
    ("POST", "/experiments/{X}/delete"),
    ("POST", "/experiments/{X}/tags"),
    ("GET", "/experiments/by-name/{X}"),
    ("GET", "/experiments/resolve/{X}"),
    ("GET", "/models/{X}"),
    ("PATCH", "/models/{X}"),
    ("PUT", "/models/{X}/tags/t"),
    ("PUT", "/models/fraud/tags/{X}"),
    ("POST", "/models/{X}/versions"),
    ("GET", "/models/{X}/versions/1/files/manifest.json"),
    ("GET", "/models/fraud/versions/1/files/{X}"),
    ("PUT", "/models/fraud/versions/1/tags/{X}"),
    ("PUT", "/models/{X}/aliases/champion"),
    ("PUT", "/models/fraud/aliases/{X}"),
    ("DELETE", "/models/fraud/aliases/{X}"),
    ("DELETE", "/models/{X}/aliases/champion"),
]
# A body each route would accept, so that only the attacked field can be the reason to refuse.
BODIES = {
    "PATCH /runs/{X}": b'{"name": "renamed"}',
    "POST /runs/{X}/batch": b'{"params": {"p": "1"}}',
    "POST /runs/{X}/inputs": b'{"inputs": [{"name": "d", "digest": "x", "context": "train"}]}',
    "PATCH /experiments/{X}": b'{"name": "renamed"}',
    "POST /experiments/{X}/tags": b'{"key": "k", "value": "v"}',
    "PATCH /models/{X}": b'{"description": "pwned"}',
    "PUT /models/{X}/tags/t": b'{"value": "v"}',
    "PUT /models/fraud/tags/{X}": b'{"value": "v"}',
    "POST /models/{X}/versions": b'{"source": "runs:/{run}/model"}',
    "PUT /models/fraud/versions/1/tags/{X}": b'{"value": "v"}',
    "PUT /models/{X}/aliases/champion": b'{"version": 1}',
    "PUT /models/fraud/aliases/{X}": b'{"version": 1}',
}
SEGMENT_ATTACKS = [
    "dotdot",
    "backslash",
    "encoded_once",
    "encoded_twice",
    "semicolon",
    "question_smuggle",
    "hash_smuggle",
    "double_slash",
    "file_uri",
    "absolute_encoded",
    "windows_drive",
    "nul",
    "fullwidth_dots",
]


@pytest.mark.parametrize(("method", "route"), SEGMENT_ROUTES, ids=lambda v: str(v))
@pytest.mark.parametrize("attack", SEGMENT_ATTACKS)
def test_ids_and_names_in_urls_refuse_every_escape(
    target: Target, method: str, route: str, attack: str
) -> None:
    body = BODIES.get(f"{method} {route}", b"")
    body = body.replace(b"{run}", target.ids["run"].encode())
    attempt(
        target,
        method,
        API + route.replace("{X}", PATH_ATTACKS[attack]),
        body,
        json_body=bool(body),
    )


# -- names and keys in request bodies ------------------------------------------------------------

NAME_ATTACKS = [
    "../../outside/secret.txt",
    "..\\..\\outside\\secret.txt",
    "%2e%2e%2f%2e%2e%2f",
    "a\x00b",
    "file:///etc/passwd",
    "/etc/passwd",
]


@pytest.mark.parametrize("name", NAME_ATTACKS)
def test_model_names_that_look_like_paths_are_refused(target: Target, name: str) -> None:
    attempt(target, "POST", f"{API}/models", json.dumps({"name": name}).encode(), json_body=True)


@pytest.mark.parametrize("name", [".", ".."])
def test_model_names_that_urls_cannot_carry_are_refused(target: Target, name: str) -> None:
    """A model called '..' could never be reached over HTTP (clients normalise it away)."""
    attempt(target, "POST", f"{API}/models", json.dumps({"name": name}).encode(), json_body=True)


@pytest.mark.parametrize(
    "key", ["../../x", "/etc/passwd", "a\\b", "a\x00b", "..", "file:///etc/passwd"]
)
def test_param_metric_and_tag_keys_that_look_like_paths_are_refused(
    target: Target, key: str
) -> None:
    for field in ("params", "tags"):
        body = json.dumps({field: {key: "v"}}).encode()
        attempt(target, "POST", f"{API}/runs/{{run}}/batch", body, json_body=True)
    body = json.dumps({"metrics": [{"key": key, "value": 1.0}]}).encode()
    attempt(target, "POST", f"{API}/runs/{{run}}/batch", body, json_body=True)


def test_path_like_experiment_names_are_only_names(target: Target) -> None:
    """Experiment names may contain '/' (teams use 'team/project'); they are database keys and
    never reach a file system: a name spelling a traversal creates no folder anywhere."""
    before = set(os.listdir(target.home))
    before_artifacts = sorted(p.as_posix() for p in target.artifact_root.rglob("*"))
    before_outside = target.outside_state()
    name = "../../outside/owned"
    r = target.client.post(f"{API}/experiments", json={"name": name})
    assert r.status_code == 201, r.text
    got = target.client.get(f"{API}/experiments/by-name/{quote(name, safe='')}")
    # Clients normalise '..'; the name is reachable through the resolve route's encoding.
    assert got.status_code in (200, 404)
    assert set(os.listdir(target.home)) == before
    assert sorted(p.as_posix() for p in target.artifact_root.rglob("*")) == before_artifacts
    assert target.outside_state() == before_outside
    assert not (target.outside / "owned").exists()


# -- model sources (registry) --------------------------------------------------------------------

SOURCE_ATTACKS = [
    "runs:/{run}/../../outside/secret.txt",
    "runs:/{run}/model/../../../outside",
    "runs:/{run}/..%2f..%2foutside",
    "runs:/{run}/%2e%2e/%2e%2e/outside",
    "runs:/{run}/%252e%252e%252foutside",
    "runs:/{run}/model;../../outside",
    "runs:/{run}/model?x=../../outside",
    "runs:/{run}/model#../../outside",
    "runs:/{run}//model",
    "runs:/{run}/model\\..\\..\\outside",
    "runs:/{run}/model\x00",
    "runs:/{run}//etc/passwd",
    "runs:/../../outside/secret.txt",
    "runs://{run}/model",
    "runs:/{run}/C:/Windows",
    "runs:/{run}/file:///etc/passwd",
    "models:/../fraud/1",
    "models:/fraud/../1",
    "models:/fraud/1/../../outside",
    "models:/fraud%2f..%2f1",
    "models:/fraud;1",
    "file:///etc/passwd",
    "file:../../outside",
    "/etc/passwd",
    "../../outside/secret.txt",
    "..\\..\\outside",
    "C:\\Windows\\win.ini",
    "//evil.example/model",
    "s3://bucket/model",
    "gs://bucket/model",
    "hdfs://namenode/model",
    "memory://model",
    "mlflow-artifacts:/model",
    "package:" + "0" * 64,
]


@pytest.mark.parametrize("source", SOURCE_ATTACKS)
def test_registry_sources_outside_dockyard_storage_are_refused(target: Target, source: str) -> None:
    body = json.dumps({"source": target.fmt(source)}).encode()
    attempt(target, "POST", f"{API}/models/stolen/versions", body, json_body=True)
    assert target.client.get(f"{API}/models/stolen").status_code == 404


def test_registry_sources_naming_the_real_sentinel_are_refused(target: Target) -> None:
    for source in [*_absolute_attacks(target).values(), str(target.outside)]:
        body = json.dumps({"source": source}).encode()
        attempt(target, "POST", f"{API}/models/fraud/versions", body, json_body=True)


@pytest.mark.parametrize(
    "uri",
    [
        "models:/../fraud/1",
        "models:/fraud/../../x",
        "file:///etc/passwd",
        "runs:/{run}/../../x",
        "/etc/passwd",
        "models:/fraud%2f..%2f1",
        "fraud@../../x",
    ],
)
def test_model_uri_resolution_refuses_escapes(target: Target, uri: str) -> None:
    attempt(target, "GET", f"{API}/models/resolve?uri={quote(target.fmt(uri), safe='')}")


def test_registry_file_downloads_only_serve_recorded_files(target: Target) -> None:
    for attack in ATTACK_IDS:
        attempt(target, "GET", f"{API}/models/fraud/versions/1/files/{PATH_ATTACKS[attack]}")
    for spelled in _absolute_attacks(target).values():
        attempt(target, "GET", f"{API}/models/fraud/versions/1/files/{quote(spelled, safe='')}")


# -- experiment artifact location, dataset sources, holdout data ---------------------------------


@pytest.mark.parametrize(
    ("route", "extra"),
    [
        ("/experiments", {"artifact_location": "file:///etc"}),
        ("/experiments", {"artifact_location": "../../outside"}),
        ("/experiments", {"artifact_location": "s3://attacker/bucket"}),
        ("/experiments/get-or-create", {"artifact_location": "/etc"}),
    ],
)
def test_experiment_artifact_location_cannot_be_set(
    target: Target, route: str, extra: dict[str, str]
) -> None:
    body = json.dumps({"name": "located", **extra}).encode()
    attempt(target, "POST", API + route, body, json_body=True)


@pytest.mark.parametrize(
    "data",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        {"path": "../../outside/secret.txt"},
        {"uri": "file:///etc/passwd"},
        {"columns": {"a": [1.0]}, "source": "../../outside/secret.txt"},
        {"records": "file:///etc/passwd"},
    ],
)
def test_validation_data_is_never_a_path(target: Target, data: Any) -> None:
    body = json.dumps({"data": data, "label": "label"}).encode()
    attempt(target, "POST", f"{API}/models/fraud/versions/1/validate", body, json_body=True)


def test_dataset_sources_are_recorded_never_opened(target: Target) -> None:
    """A dataset input's ``source`` is lineage text: the server stores it and never opens it,
    so a path or file URI to the sentinel leaks nothing and writes nothing."""
    before_outside = target.outside_state()
    run = target.client.post(f"{API}/runs", json={"experiment_id": target.ids["exp"]}).json()
    for source in [str(target.sentinel), "file://" + str(target.sentinel), UP]:
        r = target.client.post(
            f"{API}/runs/{run['run_id']}/inputs",
            json={"inputs": [{"name": "d", "digest": "x", "context": "train", "source": source}]},
        )
        assert r.status_code == 204, r.text
    got = target.client.get(f"{API}/runs/{run['run_id']}")
    assert got.status_code == 200
    assert SECRET not in got.content
    assert target.outside_state() == before_outside


# -- symlinks inside a local artifact root -------------------------------------------------------


def _blob_of(t: Target, path: str) -> Path:
    items = t.client.get(f"{API}/runs/{t.ids['run']}/artifacts", params={"path": "dir"}).json()
    digest = next(i["digest"] for i in items["items"] if i["path"] == path)
    return t.artifact_root / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest


@pytest.fixture
def fresh(tmp_path: Path, package: Path) -> Any:
    yield from make_target(tmp_path, package)


def test_a_blob_replaced_by_a_symlink_outside_is_never_served(fresh: Target) -> None:
    blob = _blob_of(fresh, "dir/file.txt")
    blob.unlink()
    blob.symlink_to(fresh.sentinel)
    before_outside = fresh.outside_state()
    status, _h, payload = fresh.raw("GET", f"{API}/runs/{fresh.ids['run']}/artifacts/dir/file.txt")
    assert SECRET not in payload
    body = json.loads(payload)
    # Tampering with the server's own storage is not the caller's mistake: 500 integrity_error,
    # in the envelope, before a byte of the linked file is sent.
    assert (status, body["error"]["code"]) == (500, "integrity_error")
    assert fresh.outside_state() == before_outside


def test_a_blob_folder_linked_outside_is_never_written_through(fresh: Target) -> None:
    content = b"new artifact bytes"
    digest = hashlib.sha256(content).hexdigest()
    level1 = fresh.artifact_root / "blobs" / "sha256" / digest[:2]
    assert not level1.exists()
    level1.symlink_to(fresh.outside, target_is_directory=True)
    before_outside = fresh.outside_state()
    r = fresh.client.put(f"{API}/runs/{fresh.ids['run']}/artifacts/new.bin", content=content)
    assert r.status_code == 500 and r.json()["error"]["code"] == "integrity_error", r.text
    assert fresh.outside_state() == before_outside
    assert sorted(os.listdir(fresh.outside)) == ["secret.txt"]
    listing = fresh.client.get(f"{API}/runs/{fresh.ids['run']}/artifacts").json()["items"]
    assert "new.bin" not in {i["path"] for i in listing}


def test_listing_never_follows_links_on_disk(fresh: Target) -> None:
    """Listings come from the metadata store, not from walking folders: a link planted in the
    artifact root adds nothing to any listing."""
    (fresh.artifact_root / "blobs" / "evil").symlink_to(fresh.outside, target_is_directory=True)
    items = fresh.client.get(f"{API}/runs/{fresh.ids['run']}/artifacts").json()["items"]
    assert {i["path"] for i in items} == {"dir", "model"}
    listed = fresh.client.get(f"{API}/runs/{fresh.ids['run']}/artifacts", params={"path": "dir"})
    assert SECRET not in listed.content and "secret" not in listed.text
