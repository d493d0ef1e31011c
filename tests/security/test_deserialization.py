"""Unsafe deserialization: pickle-family packages need explicit trust, dangerous skops types never
load, and the server never unpickles because a request asks it to.

The malicious payloads are real: the pickle's ``__reduce__`` would create a marker file when
unpickled, and the skops file names ``builtins.eval`` / ``posix.system`` / ``subprocess.Popen``
in its schema. Each test checks the marker was never created. Packages are crafted the way an
attacker would: replace the model file, then rewrite the manifest's hashes (and, for skops, its
``skops_trusted_types``) so that the package verifies.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.registry.packaging import load_model
from dockyard.registry.packaging.manifest import read_manifest, sha256_bytes

from ._target import API, Target, assert_envelope


class _Boom:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def rewrite(src: Path, dest: Path, files: dict[str, bytes], **manifest_changes: Any) -> Path:
    """Copy package ``src`` to ``dest`` with ``files`` replaced (or added) and the manifest's
    hashes fixed so that the package verifies; ``manifest_changes`` edit manifest fields."""
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    for name, data in files.items():
        (dest / name).write_bytes(data)
        manifest["files"][name] = {"sha256": sha256_bytes(data), "size": len(data)}
    for name in list(manifest["files"]):
        if not (dest / name).exists():
            del manifest["files"][name]
    manifest.update(manifest_changes)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    read_manifest(dest)  # still a well-formed manifest
    return dest


def _pickle_package(package: Path, dest: Path, marker: Path, kind: str) -> Path:
    payload = pickle.dumps(_Boom(marker))
    name = "model.joblib" if kind == "joblib" else "model.pkl"
    (dest.parent).mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{dest.name}-src"
    shutil.copytree(package, tmp)
    (tmp / "model.skops").unlink()
    manifest = json.loads((tmp / "manifest.json").read_text())
    del manifest["files"]["model.skops"]
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    config = dict(manifest.get("flavor_config") or {})
    for key, value in list(config.items()):
        if value == "model.skops":
            config[key] = name
    out = rewrite(
        tmp,
        dest,
        {name: payload},
        serialization=kind,
        trusted_pickle=True,
        skops_trusted_types=[],
        flavor_config=config,
    )
    shutil.rmtree(tmp)
    return out


# -- skops files with dangerous types ------------------------------------------------------------


def _dangerous_skops(model_skops: bytes, module: str, name: str) -> bytes:
    """The package's skops file with one more attribute of the model whose node is the
    function or class ``module.name``, written into schema.json the way skops writes one."""
    src = zipfile.ZipFile(io.BytesIO(model_skops))
    schema = json.loads(src.read("schema.json"))
    # What skops.io.dumps writes for a function or class (e.g. dumps(os.system)).
    node = {"__class__": name, "__module__": module, "__loader__": "TypeNode", "__id__": 999_999}
    schema["content"]["content"]["pwn"] = node
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "schema.json":
                data = json.dumps(schema).encode()
            dst.writestr(item, data)
    return out.getvalue()


DANGEROUS = [
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("os", "system"),
    ("posix", "system"),
    ("subprocess", "Popen"),
]


def _skops_type_names(data: bytes) -> list[str]:
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=data))


@pytest.mark.parametrize(("module", "name"), DANGEROUS)
def test_skops_file_with_a_dangerous_type_is_refused_even_if_recorded_trusted(
    package: Path, tmp_path: Path, module: str, name: str
) -> None:
    bad = _dangerous_skops((package / "model.skops").read_bytes(), module, name)
    found = _skops_type_names(bad)
    assert f"{module}.{name}" in found, found  # skops itself sees the dangerous type
    crafted = rewrite(
        package,
        tmp_path / "crafted",
        {"model.skops": bad},
        skops_trusted_types=sorted({*read_manifest(package).skops_trusted_types, *found}),
    )
    from dockyard.registry.packaging import UntrustedModel

    with pytest.raises(UntrustedModel) as err:
        load_model(crafted)
    assert f"{module}.{name}" in str(err.value)
    # And with the type *not* recorded: refused as well.
    plain = rewrite(package, tmp_path / "plain", {"model.skops": bad})
    with pytest.raises(UntrustedModel):
        load_model(plain)


# -- pickle, joblib, cloudpickle -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pickle", "cloudpickle", "joblib"])
def test_pickle_packages_are_refused_without_trust(
    package: Path, tmp_path: Path, kind: str
) -> None:
    from dockyard.registry.packaging import UntrustedModel

    marker = tmp_path / "pwned"
    crafted = _pickle_package(package, tmp_path / "pkl", marker, kind)
    with pytest.raises(UntrustedModel) as err:
        load_model(crafted)
    assert "trust_pickle" in str(err.value)
    assert not marker.exists(), "the pickle ran"


def _upload_package(t: Target, folder: Path, name: str) -> Any:
    listing = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            r = t.client.post(f"{API}/blobs", content=f.read_bytes())
            assert r.status_code == 201, r.text
            listing[f.relative_to(folder).as_posix()] = r.json()
    return t.client.post(f"{API}/models/{name}/versions", json={"files": listing})


HOLDOUT = {
    "data": {"columns": {"a": [0.5, -0.5], "b": [0.1, 0.2], "label": [1, 0]}},
    "label": "label",
    "against": None,
}


@pytest.mark.parametrize("kind", ["pickle", "joblib"])
def test_server_never_unpickles(target: Target, package: Path, tmp_path: Path, kind: str) -> None:
    """A pickle package can be stored (it is just bytes), but the server's validate route
    refuses trust_pickle=true (403) and, without it, refuses to load the pickle (4xx); the
    payload never runs."""
    marker = tmp_path / "pwned"
    crafted = _pickle_package(package, tmp_path / "pkl", marker, kind)
    name = f"pickled-{kind}"
    r = _upload_package(target, crafted, name)
    if r.status_code != 201:
        assert_envelope(r.status_code, r.json())  # refused at registration: fine too
    else:
        v = r.json()["version"]
        trusted = target.client.post(
            f"{API}/models/{name}/versions/{v}/validate", json={**HOLDOUT, "trust_pickle": True}
        )
        assert trusted.status_code == 403, trusted.text
        assert_envelope(trusted.status_code, trusted.json(), codes=("permission_denied",))
        plain = target.client.post(f"{API}/models/{name}/versions/{v}/validate", json=HOLDOUT)
        assert_envelope(plain.status_code, plain.json())
    assert not marker.exists(), "the pickle ran on the server"
    assert not os.path.exists(marker)


@pytest.mark.parametrize(("module", "name"), [("builtins", "eval"), ("posix", "system")])
def test_server_refuses_dangerous_skops_packages(
    target: Target, package: Path, tmp_path: Path, module: str, name: str
) -> None:
    bad = _dangerous_skops((package / "model.skops").read_bytes(), module, name)
    found = _skops_type_names(bad)
    crafted = rewrite(
        package,
        tmp_path / "crafted",
        {"model.skops": bad},
        skops_trusted_types=sorted({*read_manifest(package).skops_trusted_types, *found}),
    )
    model = f"evil-{name}"
    r = _upload_package(target, crafted, model)
    if r.status_code == 201:
        v = r.json()["version"]
        out = target.client.post(f"{API}/models/{model}/versions/{v}/validate", json=HOLDOUT)
        assert_envelope(out.status_code, out.json())
        assert f"{module}.{name}" in out.json()["error"]["message"]
    else:
        assert_envelope(r.status_code, r.json())
        assert f"{module}.{name}" in r.json()["error"]["message"]


# -- types the author vouched for, that a server does not trust -----------------------------------


def _gadget_package(tmp_path: Path, marker: Path) -> tuple[Path, str]:
    import pandas as pd

    from dockyard.registry.packaging import save_model

    from ._gadget import Gadget

    x = pd.DataFrame({"a": [0.5, -0.5, 1.0], "b": [0.1, 0.2, 0.3]})
    dest = tmp_path / "gadget-pkg"
    save_model(Gadget(str(marker)).fit(x, [1, 0, 1]), dest, input_example=x)
    [recorded] = read_manifest(dest).skops_trusted_types
    assert recorded.endswith("_gadget.Gadget")
    return dest, recorded


def test_server_does_not_build_types_only_the_author_trusted(
    target: Target, tmp_path: Path
) -> None:
    """An editor's package that records its own class (whose loading runs code) is stored,
    but the server's validate refuses to build it -- the class's module is not in
    DOCKYARD_TRUSTED_MODULES -- and the code never runs; locally, where the user loading the
    package is the one trusting its author, it loads as before."""
    marker = tmp_path / "pwned"
    pkg, recorded = _gadget_package(tmp_path, marker)
    r = _upload_package(target, pkg, "gadget")
    assert r.status_code == 201, r.text
    out = target.client.post(f"{API}/models/gadget/versions/1/validate", json=HOLDOUT)
    assert_envelope(out.status_code, out.json())
    assert 400 <= out.status_code < 500
    message = out.json()["error"]["message"]
    assert recorded in message and "DOCKYARD_TRUSTED_MODULES" in message
    assert not marker.exists()

    root = recorded.split(".")[0]
    from dockyard.registry.packaging.trust import DEFAULT_TRUSTED_MODULES

    with pytest.raises(Exception, match="DOCKYARD_TRUSTED_MODULES"):
        load_model(pkg, trusted_modules=DEFAULT_TRUSTED_MODULES)
    assert not marker.exists()
    load_model(pkg, trusted_modules=(*DEFAULT_TRUSTED_MODULES, root))  # the operator opted in
    assert marker.exists()


def test_the_trusted_modules_setting_is_checked() -> None:
    from dockyard.core.errors import ConfigError
    from dockyard.registry.packaging.trust import DEFAULT_TRUSTED_MODULES, parse_trusted_modules

    assert parse_trusted_modules(None) == DEFAULT_TRUSTED_MODULES
    assert parse_trusted_modules("sklearn, mycorp.models,sklearn") == ("sklearn", "mycorp.models")
    assert parse_trusted_modules("*") is None
    with pytest.raises(ConfigError, match="not a module name"):
        parse_trusted_modules("sklearn,../evil")
