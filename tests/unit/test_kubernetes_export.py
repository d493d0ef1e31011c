"""`dockyard endpoints export --kubernetes`: the Dockerfile and manifests, parsed and checked
field by field; names, refusals, no overwrite without force; the CLI command on a temp store."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dockyard.core.errors import AlreadyExists, DockyardWarning, InvalidInput, NotFound
from dockyard.serving.kubernetes import (
    DEFAULT_SECRET,
    HOME_DIR,
    OPTIONAL_SECRET_KEYS,
    export_kubernetes,
    kubernetes_name,
)

IMAGE = "registry.example.com/ml/fraud-serving:1.0"
ROOT = "s3://ml-artifacts/dockyard"
MANIFESTS = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml")


def _export(out: Path, endpoint: str = "fraud", **kwargs: Any) -> list[Path]:
    kwargs.setdefault("image", IMAGE)
    kwargs.setdefault("artifact_root", ROOT)
    return export_kubernetes(endpoint, out, **kwargs)


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def out(tmp_path: Path) -> Path:
    target = tmp_path / "out"
    _export(target, dockyard_version="0.1.0")
    return target


def _container(out: Path) -> dict[str, Any]:
    (container,) = _load(out / "deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _env(out: Path) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(out)["env"]}


# -- the files ----------------------------------------------------------------------------------


def test_export_writes_every_file_and_each_manifest_parses(out: Path) -> None:
    names = {p.name for p in out.iterdir()}
    assert names == {
        "Dockerfile",
        ".dockerignore",
        *MANIFESTS,
        "kustomization.yaml",
        "secret.example.yaml",
        "README.txt",
    }
    kinds = {f: (_load(out / f)["apiVersion"], _load(out / f)["kind"]) for f in MANIFESTS}
    assert kinds == {
        "deployment.yaml": ("apps/v1", "Deployment"),
        "service.yaml": ("v1", "Service"),
        "hpa.yaml": ("autoscaling/v2", "HorizontalPodAutoscaler"),
        "pdb.yaml": ("policy/v1", "PodDisruptionBudget"),
    }
    for f in MANIFESTS:
        meta = _load(out / f)["metadata"]
        assert meta["name"] == "fraud" and "namespace" not in meta
        assert meta["labels"]["app.kubernetes.io/instance"] == "fraud"
        assert meta["labels"]["app.kubernetes.io/version"] == "0.1.0"


def test_deployment_selector_matches_pod_labels_and_service_and_hpa_point_at_it(
    out: Path,
) -> None:
    dep = _load(out / "deployment.yaml")
    selector = dep["spec"]["selector"]["matchLabels"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert "app.kubernetes.io/version" not in selector  # a selector is immutable
    assert dep["metadata"]["annotations"]["dockyard/endpoint"] == "fraud"

    svc = _load(out / "service.yaml")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == selector
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["name"] == "http" and svc_port["targetPort"] == "http"
    assert svc_port["port"] == 80 and svc_port["protocol"] == "TCP"
    assert svc["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/metrics",
        "prometheus.io/port": "8080",
    }

    hpa = _load(out / "hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    # The HPA owns the count: a re-apply of the Deployment must not reset it.
    assert "replicas" not in dep["spec"]

    pdb = _load(out / "pdb.yaml")["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


def test_deployment_runs_dockyard_serve_with_probes_on_the_v2_health_routes(out: Path) -> None:
    dep = _load(out / "deployment.yaml")
    c = _container(out)
    assert c["image"] == IMAGE
    serve = ["fraud", "--host", "0.0.0.0", "--port", "8080", "--workers", "1"]
    assert c["args"] == serve
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    # Requests in flight finish: preStop sleep, a grace period longer than it, no pod
    # removed before its replacement is ready.
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) > 0
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= int(pre_stop[1]) + 5
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_deployment_takes_secrets_by_reference_only(out: Path) -> None:
    env = _env(out)
    assert env["DOCKYARD_DB_URL"] == {
        "name": "DOCKYARD_DB_URL",
        "valueFrom": {"secretKeyRef": {"name": DEFAULT_SECRET, "key": "DOCKYARD_DB_URL"}},
    }
    for key in ("DOCKYARD_ENCRYPTION_KEY", "DOCKYARD_REDACTION_KEY", *OPTIONAL_SECRET_KEYS):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": DEFAULT_SECRET, "key": key, "optional": True}
        assert "value" not in env[key]
    plain = {k: e["value"] for k, e in env.items() if "value" in e}
    assert plain["DOCKYARD_ARTIFACT_ROOT"] == ROOT
    assert plain["DOCKYARD_AUTH"] == "on"
    assert plain["DOCKYARD_HOME"] == HOME_DIR
    assert not {"DOCKYARD_DB_URL", "DOCKYARD_TRACKING_TOKEN"} & plain.keys()
    text = (out / "deployment.yaml").read_text()
    assert "postgresql" not in text and "PASSWORD" not in text


def test_allowed_hosts_are_the_service_names_the_pod_ip_and_loopback(out: Path) -> None:
    env = _env(out)
    names = list(env)
    # $(VAR) expands only from variables defined before it.
    assert names.index("POD_IP") < names.index("DOCKYARD_ALLOWED_HOSTS")
    assert names.index("POD_NAMESPACE") < names.index("DOCKYARD_ALLOWED_HOSTS")
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    hosts = env["DOCKYARD_ALLOWED_HOSTS"]["value"].split(",")
    assert hosts == [
        "$(POD_IP)",
        "fraud",
        "fraud.$(POD_NAMESPACE)",
        "fraud.$(POD_NAMESPACE).svc",
        "fraud.$(POD_NAMESPACE).svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]
    assert "*" not in hosts


def test_pods_run_as_non_root_on_a_read_only_root_filesystem(out: Path) -> None:
    pod = _load(out / "deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = _container(out)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(out)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {HOME_DIR, "/tmp"}
    for name in mounts.values():
        assert "sizeLimit" in volumes[name]["emptyDir"]


def test_kustomization_lists_the_manifests_but_never_the_secret_template(out: Path) -> None:
    kust = _load(out / "kustomization.yaml")
    assert kust["kind"] == "Kustomization"
    assert kust["resources"] == list(MANIFESTS)
    assert all((out / f).is_file() for f in kust["resources"])


def test_secret_example_is_a_template_with_placeholders(out: Path) -> None:
    text = (out / "secret.example.yaml").read_text()
    assert text.startswith("# TEMPLATE")
    assert "Do NOT apply this file as it is" in text
    doc = yaml.safe_load(text)
    assert (doc["apiVersion"], doc["kind"], doc["type"]) == ("v1", "Secret", "Opaque")
    assert doc["metadata"]["name"] == DEFAULT_SECRET
    assert doc["stringData"] == {
        "DOCKYARD_DB_URL": "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE"
    }
    for key in OPTIONAL_SECRET_KEYS:  # documented, not set to a placeholder
        assert f"#   {key}:" in text


def test_dockerfile_installs_the_pinned_version_and_runs_as_a_non_root_user(out: Path) -> None:
    lines = (out / "Dockerfile").read_text().splitlines()
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert code[0] == "FROM python:3.11-slim"
    install = next(i for i, ln in enumerate(code) if ln.startswith("RUN pip install"))
    assert code[install] == 'RUN pip install "dockyard[serving,postgres]==0.1.0" "s3fs"'
    user = code.index("USER 10001:10001")
    entry = code.index('ENTRYPOINT ["dockyard", "serve"]')
    assert install < user < entry  # installed as root, run as the user
    assert "EXPOSE 8080" in code
    cmd = json.loads(code[-1].removeprefix("CMD "))
    assert cmd == _container(out)["args"]
    assert any(ln.strip().startswith("CMD") and "/v2/health/live" in ln for ln in code)
    assert (out / ".dockerignore").read_text().splitlines()[1:] == ["*", "!*.whl"]


def test_readme_explains_build_push_secret_and_apply(out: Path) -> None:
    text = (out / "README.txt").read_text()
    for step in (
        f"docker build -t {IMAGE} .",
        f"docker push {IMAGE}",
        f"kubectl create secret generic {DEFAULT_SECRET}",
        "kubectl apply -k .",
        "/v2/health/ready",
    ):
        assert step in text


# -- options ------------------------------------------------------------------------------------


def test_export_with_a_wheel_copies_it_and_installs_it(tmp_path: Path) -> None:
    wheel = tmp_path / "dockyard-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK fake wheel")
    out = tmp_path / "out"
    _export(out, wheel=wheel, extras=["onnx", "encryption"], artifact_root="gs://b/dy")
    assert (out / wheel.name).read_bytes() == b"PK fake wheel"
    text = (out / "Dockerfile").read_text()
    assert f"COPY {wheel.name} /tmp/wheels/{wheel.name}" in text
    assert (
        f'RUN pip install "/tmp/wheels/{wheel.name}[serving,postgres,onnx,encryption]" "gcsfs"'
        in text
    )
    assert "==" not in text


def test_export_options_reach_the_manifests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(
        out,
        "Fraud_Scorer.v2",
        namespace="ml",
        db_url_secret="team-store",
        port=9000,
        workers=4,
        min_replicas=3,
        max_replicas=20,
        cpu_target=60,
        cpu_request="2",
        memory_request="2Gi",
        memory_limit="4Gi",
        extra_hosts=["fraud.ml.example.com"],
        service_account="fraud-serving",
        trusted_modules="sklearn,numpy,mylib",
    )
    for f in (*MANIFESTS, "secret.example.yaml"):
        assert _load(out / f)["metadata"]["namespace"] == "ml"
    assert _load(out / "deployment.yaml")["metadata"]["name"] == "fraud-scorer-v2"
    c = _container(out)
    assert c["args"][0] == "Fraud_Scorer.v2"  # the store's name, as is
    assert c["args"][-4:] == ["--port", "9000", "--workers", "4"]
    assert c["ports"][0]["containerPort"] == 9000
    env = _env(out)
    assert env["DOCKYARD_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "team-store"
    assert env["DOCKYARD_TRUSTED_MODULES"]["value"] == "sklearn,numpy,mylib"
    assert env["DOCKYARD_ALLOWED_HOSTS"]["value"].endswith(",fraud.ml.example.com")
    pod = _load(out / "deployment.yaml")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "fraud-serving"
    hpa = _load(out / "hpa.yaml")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert _load(out / "service.yaml")["metadata"]["annotations"]["prometheus.io/port"] == "9000"
    assert "kubectl create secret generic team-store -n ml" in (out / "README.txt").read_text()


def test_export_without_autoscaling_sets_the_replica_count(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(out)
    _export(out, autoscale=False, replicas=3, force=True)  # the earlier hpa.yaml goes
    assert _load(out / "deployment.yaml")["spec"]["replicas"] == 3
    assert not (out / "hpa.yaml").exists()
    assert _load(out / "kustomization.yaml")["resources"] == [
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    ]


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [
        ("fraud", "fraud"),
        ("Fraud_Scorer.v2", "fraud-scorer-v2"),
        ("fraud--ep__2", "fraud-ep-2"),
        ("fraud-", "fraud"),
        ("a" * 63, "a" * 63),
    ],
)
def test_kubernetes_name_converts_to_an_rfc_1035_label(endpoint: str, name: str) -> None:
    assert kubernetes_name(endpoint) == name


@pytest.mark.parametrize("endpoint", ["2fraud", "a" * 64, "9"])
def test_kubernetes_name_refuses_what_cannot_be_a_service_name(endpoint: str) -> None:
    with pytest.raises(InvalidInput, match="RFC 1035 label") as info:
        kubernetes_name(endpoint)
    assert "--name" in str(info.value) and "63" in str(info.value)


def test_export_takes_a_name_for_an_endpoint_whose_own_cannot_be_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="derived from endpoint '2fraud'"):
        _export(tmp_path / "a", "2fraud")
    _export(tmp_path / "b", "2fraud", name="fraud-2")
    assert _load(tmp_path / "b" / "service.yaml")["metadata"]["name"] == "fraud-2"
    assert _container(tmp_path / "b")["args"][0] == "2fraud"
    with pytest.raises(InvalidInput, match="RFC 1035 label"):
        _export(tmp_path / "c", "fraud", name="Fraud")
    with pytest.raises(InvalidInput, match="endpoint name"):
        _export(tmp_path / "d", "bad name")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": "bad image"}, "image must be"),
        ({"image": ""}, "image must be"),
        ({"artifact_root": "s3://key:secret@bucket/dy"}, "password"),
        ({"min_replicas": 5, "max_replicas": 2}, "must not exceed max_replicas"),
        ({"port": 80}, "port must be a whole number from 1024"),
        ({"workers": 0}, "workers"),
        ({"cpu_request": "500Mi"}, "cpu_request"),
        ({"memory_request": "2Gi", "memory_limit": "1Gi"}, "must not exceed memory_limit"),
        ({"memory_limit": "lots"}, "memory_limit"),
        ({"db_url_secret": "Team_Secret"}, "Secret's name must be a DNS subdomain"),
        ({"namespace": "ML"}, "namespace must be an RFC 1123 label"),
        ({"extra_hosts": ["bad host"]}, "extra host"),
        ({"extras": ["bad extra"]}, "extra"),
        ({"dockyard_version": "latest"}, "dockyard version"),
        ({"termination_grace_seconds": 10, "pre_stop_seconds": 10}, "preStop"),
        ({"wheel": "missing.whl"}, "is not a .whl file"),
    ],
)
def test_export_refuses_bad_values_before_writing_anything(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        _export(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


# -- writing ------------------------------------------------------------------------------------


def test_export_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AlreadyExists, match=r"not empty \(notes.txt\).*--force"):
        _export(out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    written = _export(out, force=True, cpu_target=50)
    assert (out / "notes.txt").read_text() == "mine"  # not ours: left alone
    assert {p.name for p in written} <= {p.name for p in out.iterdir()}
    with pytest.raises(AlreadyExists):
        _export(out, cpu_target=90)
    _export(out, cpu_target=90, force=True)
    metric = _load(out / "hpa.yaml")["spec"]["metrics"][0]
    assert metric["resource"]["target"]["averageUtilization"] == 90
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".dockerignore"]


def test_export_writes_into_an_empty_folder_and_creates_missing_parents(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert len(_export(tmp_path / "empty")) == 9
    written = _export(tmp_path / "a" / "b" / "out")
    assert all(p.parent == tmp_path / "a" / "b" / "out" for p in written)
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out"]


def test_export_refuses_a_file_in_place_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(InvalidInput, match="not a folder"):
        _export(tmp_path / "out", force=True)


def test_export_warns_when_pods_could_not_reach_the_artifact_root(tmp_path: Path) -> None:
    for root in ("/home/ana/.dockyard/artifacts", "file:///data/dy", "memory://dy"):
        target = tmp_path / hashlib.sha256(root.encode()).hexdigest()[:8]
        with pytest.warns(DockyardWarning, match="pods"):
            _export(target, artifact_root=root)
        assert "s3fs" not in (target / "Dockerfile").read_text()


def test_manifests_pass_the_kubernetes_schemas_when_the_validator_is_installed(
    tmp_path: Path,
) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    out = tmp_path / "out"
    _export(out, namespace="ml", service_account="sa", extra_hosts=["x.example.com"])
    for f in (*MANIFESTS, "secret.example.yaml"):
        kv.validate(_load(out / f), "1.28.0", strict=True)


# -- the CLI command ----------------------------------------------------------------------------


def _write_package(folder: Path, payload: bytes) -> None:
    """A small valid package (an ONNX-flavored manifest over opaque bytes)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(payload)
    manifest = {
        "format_version": 1,
        "flavor": "onnx",
        "framework": {"name": "onnx", "version": "1.0"},
        "serialization": "onnx",
        "task": "classification",
        "files": {
            "model.onnx": {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
        },
        "flavor_config": {"model_file": "model.onnx"},
        "created_time": 1,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local SQLite store in a fresh DOCKYARD_HOME with endpoint ``fraud-ep`` on fraud/1."""
    from dockyard.backend import Backend
    from dockyard.client import client as client_module
    from dockyard.core.config import load_settings
    from dockyard.governance.audit import Actor

    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    for var in (
        "DOCKYARD_TRACKING_URI",
        "DOCKYARD_DB_URL",
        "DOCKYARD_ARTIFACT_ROOT",
        "DOCKYARD_ENCRYPTION_KEY",
        "DOCKYARD_KEY_PROVIDER",
        "DOCKYARD_USER",
        "DOCKYARD_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKYARD_HOME", str(home))
    backend = Backend.open(load_settings())
    try:
        reg = backend.registry(Actor("tester"))
        reg.create_registered_model("fraud")
        _write_package(tmp_path / "pkg", b"model 1")
        files = {}
        for f in sorted((tmp_path / "pkg").iterdir()):
            info = backend.artifacts.put_stream([f.read_bytes()])
            files[f.name] = (info.digest, info.size)
        version = reg.create_model_version_from_files("fraud", files).version
        reg.transition("fraud", version, "approved", override_gate=True, reason="test")
        backend.endpoints(Actor("tester")).deploy("fraud-ep", f"fraud/{version}")
    finally:
        backend.close()
    yield home
    for key in [k for k in client_module._backends if str(home) in k[0]]:
        client_module._backends.pop(key).close()


def _cli() -> typer.Typer:
    from dockyard.cli.kubernetes import export

    app = typer.Typer()
    app.command()(export)
    return app


def test_cli_exports_an_endpoint_of_the_store(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    args = ["fraud-ep", "--kubernetes", str(out), "--image", IMAGE]
    result = CliRunner().invoke(_cli(), [*args, "--namespace", "ml", "--max-replicas", "4"])
    assert result.exit_code == 0, result.output
    assert f"wrote 9 files to {out} for endpoint fraud-ep" in result.stdout
    # The configured artifact root is a folder on this machine: warned, and written as is.
    assert "warning: artifact root" in result.stderr and "s3://" in result.stderr
    assert "warning: endpoint fraud-ep was read from a SQLite store" in result.stderr
    env = _env(out)
    assert env["DOCKYARD_ARTIFACT_ROOT"]["value"] == str((store / "artifacts").resolve())
    assert _container(out)["args"][0] == "fraud-ep"
    assert _load(out / "hpa.yaml")["spec"]["maxReplicas"] == 4
    assert _load(out / "service.yaml")["metadata"]["namespace"] == "ml"
    # fraud/1 is an ONNX package: the image gets the onnx extra.
    assert "dockyard[serving,postgres,onnx]==" in (out / "Dockerfile").read_text()

    again = CliRunner().invoke(_cli(), [*args, "--artifact-root", ROOT])
    assert isinstance(again.exception, AlreadyExists)
    forced = CliRunner().invoke(_cli(), [*args, "--artifact-root", ROOT, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "warning: artifact root" not in forced.stderr
    assert _env(out)["DOCKYARD_ARTIFACT_ROOT"]["value"] == ROOT


def test_cli_refuses_an_endpoint_that_does_not_exist(store: Path, tmp_path: Path) -> None:
    args = ["nope", "--kubernetes", str(tmp_path / "k8s"), "--image", IMAGE]
    result = CliRunner().invoke(_cli(), args)
    assert isinstance(result.exception, NotFound)
    assert "nope" in str(result.exception)
    assert not (tmp_path / "k8s").exists()


def test_container_args_parse_as_the_dockyard_serve_command(out: Path) -> None:
    """The Deployment's args (and the Dockerfile's CMD) are what `dockyard serve` takes."""
    serve_cli = pytest.importorskip("dockyard.cli.serve")
    app = typer.Typer()
    app.command()(serve_cli.serve)
    command = typer.main.get_command(app)
    ctx = command.make_context("serve", list(_container(out)["args"]))
    assert list(ctx.params["endpoints"]) == ["fraud"]
    assert (ctx.params["host"], ctx.params["port"], ctx.params["workers"]) == ("0.0.0.0", 8080, 1)
