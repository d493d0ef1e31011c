"""A container build file and Kubernetes manifests that run ``dockyard serve`` for one endpoint.

:func:`export_kubernetes` writes, into one folder:

* ``Dockerfile``: ``python:3.11-slim``, a non-root user (uid 10001), ``pip install
  dockyard[serving,postgres,...]`` at a pinned version (or a local wheel, copied next to it),
  ``ENTRYPOINT ["dockyard", "serve"]``;
* ``deployment.yaml``: the pods, with the store URL and the optional keys taken from a Secret
  *by name* (no secret value is ever written), the artifact root as plain env, auth on, the
  allowed hosts set to the pod IP and the Service's in-cluster DNS names, a read-only root
  filesystem with ``emptyDir`` volumes for ``DOCKYARD_HOME`` and ``/tmp``, startup, liveness
  (``/v2/health/live``) and readiness (``/v2/health/ready``) probes, a ``preStop`` sleep and a
  grace period so requests in flight finish, and a rolling update that never drops below the
  wanted count (``maxUnavailable: 0``);
* ``service.yaml`` (ClusterIP, port ``http``, Prometheus scrape annotations), ``hpa.yaml``
  (``autoscaling/v2`` on CPU utilization), ``pdb.yaml`` (at most one pod evicted at a time);
* ``kustomization.yaml`` listing those (so ``kubectl apply -k`` never applies the template
  below), ``secret.example.yaml`` (a template with placeholders) and ``README.txt``.

Kubernetes names are derived from the endpoint name as RFC 1035 labels (what a Service name must
be): lowercase ``a-z``, ``0-9`` and ``-``, starting with a letter, ending with a letter or digit,
at most 63 characters. Upper case becomes lower case and runs of other characters become ``-``;
a name that still breaks the rule is refused with :class:`InvalidInput` (pass ``name=``).

Every value is checked before anything is written; a new folder appears whole (written beside it,
then renamed), and files in an existing folder are each replaced atomically. A folder that is
not empty is refused unless ``force=True``. Standard library and PyYAML only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dockyard.core.errors import AlreadyExists, DockyardWarning, InvalidInput
from dockyard.core.serving_entities import check_endpoint_name

__all__ = [
    "DEFAULT_SECRET",
    "HOME_DIR",
    "OPTIONAL_SECRET_KEYS",
    "REQUIRED_SECRET_KEYS",
    "export_kubernetes",
    "kubernetes_name",
    "local_artifact_root_problem",
]

#: The Secret the pods read their store URL (and optional keys) from, by default.
DEFAULT_SECRET = "dockyard-serving"
#: Keys the Secret must hold.
REQUIRED_SECRET_KEYS: tuple[str, ...] = ("DOCKYARD_DB_URL",)
#: Keys the Secret may hold (each referenced as optional), with what they are for.
OPTIONAL_SECRET_KEYS: Mapping[str, str] = {
    "DOCKYARD_ENCRYPTION_KEY": "artifacts encrypted at rest (the same key(s) as everywhere else)",
    "DOCKYARD_REDACTION_KEY": "hash rules of the endpoint's redaction policy (the same on every "
    "replica)",
    "AWS_ACCESS_KEY_ID": "s3:// artifact root, when the pods have no workload identity (IRSA)",
    "AWS_SECRET_ACCESS_KEY": "s3:// artifact root, with AWS_ACCESS_KEY_ID",
}
#: DOCKYARD_HOME in the pods: an emptyDir (the package cache lives under it).
HOME_DIR = "/var/lib/dockyard"
_UID = 10001
#: Every file name an export may write (a wheel aside).
_GENERATED = frozenset(
    {
        "Dockerfile",
        ".dockerignore",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "kustomization.yaml",
        "secret.example.yaml",
        "README.txt",
    }
)
_DEFAULT_EXTRAS = ("serving", "postgres")
#: The fsspec implementation an artifact root's scheme needs in the image.
_FSSPEC_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}

_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "rfc1035": (
        re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"),
        "an RFC 1035 label, as a Service name must be: 1 to 63 lowercase letters, digits or "
        "'-', starting with a letter and ending with a letter or digit",
    ),
    "rfc1123": (
        re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"),
        "an RFC 1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending "
        "with a letter or digit",
    ),
    "subdomain": (
        re.compile(
            r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        ),
        "a DNS subdomain: at most 253 lowercase letters, digits, '-' or '.', each part between "
        "dots starting and ending with a letter or digit",
    ),
}
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,1023}$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.!+_-]{0,63}$")
_EXTRA = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HOST = re.compile(r"^\.?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


# -- checks ------------------------------------------------------------------------------------


def kubernetes_name(endpoint: str) -> str:
    """The Kubernetes name of an endpoint's resources: ``Fraud_Scorer.v2`` -> ``fraud-scorer-v2``.

    Raises :class:`InvalidInput`, naming the rule, when the converted name is not an RFC 1035
    label (empty, starting with a digit, or longer than 63 characters).
    """
    check_endpoint_name(endpoint)
    converted = re.sub(r"[^a-z0-9]+", "-", endpoint.lower()).strip("-")
    return _check_name(
        converted, f"Kubernetes name {converted!r} (derived from endpoint {endpoint!r})", "rfc1035"
    )


def _check_name(value: Any, what: str, rule: str) -> str:
    pattern, text = _RULES[rule]
    if not isinstance(value, str) or not pattern.match(value):
        hint = "; choose one with name= (--name)" if rule == "rfc1035" else ""
        raise InvalidInput(f"{what} must be {text}, got {value!r}{hint}")
    return value


def local_artifact_root_problem(root: str) -> str | None:
    """Why pods could not reach artifact root ``root`` (a local folder, memory), or None."""
    scheme = urlsplit(root).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path, file://, or a Windows drive
        return (
            f"artifact root {root!r} is a local folder: pods in the cluster cannot see it; use "
            "object storage shared with the rest of the team (e.g. s3://bucket/dockyard, "
            "gs://..., az://...)"
        )
    if scheme == "memory":
        return f"artifact root {root!r} lives in one process's memory: pods cannot share it"
    return None


def _quantity(value: Any, what: str, *, cpu: bool = False) -> float:
    m = _QUANTITY.match(value) if isinstance(value, str) else None
    unit = m[2] if m else None
    if m is None or (cpu and unit not in (None, "m")) or float(m[1]) <= 0:
        example = "'500m' or '2'" if cpu else "'512Mi' or '2Gi'"
        raise InvalidInput(
            f"{what} must be a positive Kubernetes quantity like {example}, got {value!r}"
        )
    return float(m[1]) * _FACTORS[unit]


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _check_image(image: Any) -> str:
    if not isinstance(image, str) or not _IMAGE.match(image):
        raise InvalidInput(
            "image must be an image reference like registry.example.com/team/fraud-serving:1.0 "
            f"(no spaces or quotes), got {image!r}"
        )
    return image


def _check_artifact_root(root: Any) -> str:
    if not isinstance(root, str) or not root.strip() or any(c in root for c in "\r\n\0"):
        raise InvalidInput(f"artifact root must be a folder or a URI, got {root!r}")
    try:
        password = urlsplit(root).password
    except ValueError:
        password = None
    if password is not None:
        raise InvalidInput(
            "the artifact root has a password in it; it would land in the manifests as plain "
            "text: put credentials in the Secret (or use workload identity) instead"
        )
    return root


def _version() -> str:
    from dockyard import __version__

    return __version__


# -- documents ---------------------------------------------------------------------------------


def _labels(name: str, version: str) -> dict[str, str]:
    return {
        **_selector(name),
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "dockyard",
        "app.kubernetes.io/managed-by": "dockyard",
        # A label value is at most 63 characters of [A-Za-z0-9._-]; a PEP 440 local version's
        # "+" is not one of them.
        "app.kubernetes.io/version": re.sub(r"[^A-Za-z0-9._-]", "_", version)[:63].strip("._-"),
    }


def _selector(name: str) -> dict[str, str]:
    # Only labels that never change: a Deployment's selector is immutable.
    return {"app.kubernetes.io/name": "dockyard-serve", "app.kubernetes.io/instance": name}


def _metadata(
    name: str, namespace: str | None, labels: Mapping[str, str], **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    meta.update(extra)
    return meta


def _serve_args(endpoint: str, port: int, workers: int) -> list[str]:
    """The arguments of ``dockyard serve`` (the image's entrypoint): the endpoint, then where
    to listen. An endpoint name starts with a letter or digit, never read as an option."""
    return [
        endpoint,
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def _allowed_hosts(name: str, cluster_domain: str, extra_hosts: Sequence[str]) -> str:
    """The Host names the pods answer to: the pod IP (calls straight to a pod; probes and
    scrapes of the open paths need no allowed host), the Service's in-cluster DNS names in the
    pod's own namespace, loopback and any extra ones.
    ``$(VAR)`` is expanded by the kubelet from the env variables defined before it."""
    names = [
        "$(POD_IP)",
        name,
        f"{name}.$(POD_NAMESPACE)",
        f"{name}.$(POD_NAMESPACE).svc",
        f"{name}.$(POD_NAMESPACE).svc.{cluster_domain}",
        "localhost",
        "127.0.0.1",
        *extra_hosts,
    ]
    return ",".join(dict.fromkeys(names))


def _deployment(
    *,
    endpoint: str,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    image: str,
    secret: str,
    artifact_root: str,
    trusted_modules: str | None,
    allowed_hosts: str,
    replicas: int | None,
    port: int,
    workers: int,
    resources: Mapping[str, Any],
    pre_stop_seconds: int,
    termination_grace_seconds: int,
    cache_size: str,
    service_account: str | None,
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    env += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for key in REQUIRED_SECRET_KEYS
    ]
    env += [
        {
            "name": key,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
        }
        for key in OPTIONAL_SECRET_KEYS
    ]
    env += [
        {"name": "DOCKYARD_ARTIFACT_ROOT", "value": artifact_root},
        {"name": "DOCKYARD_AUTH", "value": "on"},
        {"name": "DOCKYARD_ALLOWED_HOSTS", "value": allowed_hosts},
        {"name": "DOCKYARD_HOME", "value": HOME_DIR},
        {"name": "HOME", "value": HOME_DIR},
    ]
    if trusted_modules:
        env.append({"name": "DOCKYARD_TRUSTED_MODULES", "value": trusted_modules})

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        }

    container = {
        "name": "serve",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": _serve_args(endpoint, port, workers),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": dict(resources),
        # Up to 5 minutes to start; liveness only begins once this has passed.
        "startupProbe": probe("/v2/health/live", 2, 150),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        # 503 until every model of the endpoint is loaded: no traffic before.
        "readinessProbe": probe("/v2/health/ready", 5, 2),
        # Endpoints controllers and load balancers take a few seconds to stop sending new
        # requests to a terminating pod; keep serving meanwhile, then shut down gracefully.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(pre_stop_seconds)]}}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _UID,
            "runAsGroup": _UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "dockyard-home", "mountPath": HOME_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    pod_spec |= {
        # The serving process never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _UID,
            "runAsGroup": _UID,
            "fsGroup": _UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _selector(name)},
            }
        ],
        "containers": [container],
        "volumes": [
            {"name": "dockyard-home", "emptyDir": {"sizeLimit": cache_size}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec |= {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": _selector(name)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, labels, annotations={"dockyard/endpoint": endpoint}),
        "spec": spec,
    }


def _service(
    name: str, namespace: str | None, labels: Mapping[str, str], port: int, service_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            name,
            namespace,
            labels,
            annotations={
                "prometheus.io/scrape": "true",
                "prometheus.io/path": "/metrics",
                "prometheus.io/port": str(port),
            },
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(name),
            "ports": [
                {
                    "name": "http",
                    "port": service_port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }


def _hpa(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    min_replicas: int,
    max_replicas: int,
    cpu_target: int,
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu_target},
                    },
                }
            ],
            # Scale down only after five quiet minutes (replicas load models: costly to restart).
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def _pdb(name: str, namespace: str | None, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, namespace, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)}},
    }


def _kustomization(files: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # Not secret.example.yaml: its placeholders would replace the real Secret.
        "resources": list(files),
    }


def _secret_example(secret: str, namespace: str | None, endpoint: str) -> str:
    optional = "\n".join(f"#   {k}: {why}" for k, why in OPTIONAL_SECRET_KEYS.items())
    header = (
        "# TEMPLATE -- placeholder values, no secrets. Do NOT apply this file as it is:\n"
        f"# applied, it would replace the real Secret {secret!r} with placeholders.\n"
        "# Copy it OUTSIDE this folder (chmod 600), put the real values in, apply the copy,\n"
        "# then delete it -- or create the Secret directly (see README.txt).\n"
        "#\n"
        f"# The pods of endpoint {endpoint!r} read these keys from Secret {secret!r}:\n"
        "#   DOCKYARD_DB_URL (required): the metadata store, PostgreSQL, reachable from the "
        "pods\n"
        "# and may read these, when present (leave them out otherwise; never a placeholder):\n"
        f"{optional}\n"
    )
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        # Shared by every endpoint's pods: no endpoint's labels.
        "metadata": _metadata(secret, namespace, {"app.kubernetes.io/part-of": "dockyard"}),
        "type": "Opaque",
        "stringData": {
            "DOCKYARD_DB_URL": "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE",
        },
    }
    return header + _dump(doc)


def _dockerfile(
    *,
    endpoint: str,
    version: str,
    extras: Sequence[str],
    packages: Sequence[str],
    wheel_name: str | None,
    port: int,
    workers: int,
    healthcheck: bool,
) -> str:
    spec_extras = f"[{','.join(extras)}]" if extras else ""
    lines = [
        "# Runs `dockyard serve` for endpoint " + repr(endpoint) + ". Build it from this folder:",
        "#   docker build -t IMAGE .",
        "FROM python:3.11-slim",
        "",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
        f"RUN groupadd --system --gid {_UID} dockyard \\",
        f"    && useradd --system --uid {_UID} --gid {_UID} --home-dir {HOME_DIR} \\",
        "       --shell /usr/sbin/nologin dockyard \\",
        f"    && mkdir -p {HOME_DIR} && chown {_UID}:{_UID} {HOME_DIR}",
        "",
    ]
    extra_pkgs = "".join(f' "{p}"' for p in packages)
    if wheel_name:
        lines += [
            f"COPY {wheel_name} /tmp/wheels/{wheel_name}",
            f'RUN pip install "/tmp/wheels/{wheel_name}{spec_extras}"{extra_pkgs} \\',
            "    && rm -rf /tmp/wheels",
        ]
    else:
        lines += [f'RUN pip install "dockyard{spec_extras}=={version}"{extra_pkgs}']
    lines += [
        "",
        f"USER {_UID}:{_UID}",
        f"ENV DOCKYARD_HOME={HOME_DIR} HOME={HOME_DIR}",
        f"WORKDIR {HOME_DIR}",
        f"EXPOSE {port}",
    ]
    if healthcheck:
        # For `docker run`; Kubernetes ignores it and uses the Deployment's probes.
        lines += [
            "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\",
            '    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('
            f"'http://127.0.0.1:{port}/v2/health/live', timeout=4)\"]",
        ]
    args = json.dumps(_serve_args(endpoint, port, workers))
    lines += ['ENTRYPOINT ["dockyard", "serve"]', f"CMD {args}", ""]
    return "\n".join(lines)


def _readme(
    *,
    endpoint: str,
    name: str,
    namespace: str | None,
    image: str,
    secret: str,
    artifact_root: str,
    service_port: int,
    cluster_domain: str,
    autoscale: bool,
    files: Sequence[str],
) -> str:
    ns = f" -n {namespace}" if namespace else ""
    ns_name = namespace or "NAMESPACE"
    port_part = "" if service_port == 80 else f":{service_port}"
    url = f"http://{name}.{ns_name}.svc.{cluster_domain}{port_part}"
    optional = "\n".join(f"     {k}: {why}" for k, why in OPTIONAL_SECRET_KEYS.items())
    scaling = (
        "The HorizontalPodAutoscaler (hpa.yaml) owns the replica count, so deployment.yaml\n"
        "  leaves it out (a re-apply never resets it). It needs metrics-server in the cluster."
        if autoscale
        else "No autoscaler: deployment.yaml sets the replica count."
    )
    title = f"Dockyard serving on Kubernetes: endpoint {endpoint!r}"
    listed = textwrap.fill("Files: " + ", ".join(files) + ".", width=96)
    return f"""\
{title}
{"=" * len(title)}

{listed}
Resources are named {name!r}; the pods run `dockyard serve {endpoint}` and read the
endpoint's traffic policy from the metadata store, so deploy, canary, promote and rollback need
no new manifests. Re-export to change the image, resources or settings.

1. Build the image and push it where the cluster pulls from:

     docker build -t {image} .
     docker push {image}

   (run from this folder). Models of a new flavor (xgboost, lightgbm, onnx) need its extra in
   the image: re-export with --extra. Where dockyard is not on your package index, re-export
   with --wheel dist/dockyard-VERSION-py3-none-any.whl (copied here and installed from here).

2. Create the Secret {secret!r}{" in namespace " + namespace if namespace else ""} once. It holds
   DOCKYARD_DB_URL (required): the PostgreSQL metadata store, reachable from the pods
   (SQLite cannot be shared by replicas). It may also hold:
{optional}
   Put the values in a file outside this folder, readable only by you, then:

     kubectl create secret generic {secret}{ns} --from-env-file=dockyard-serving.env

   with lines like DOCKYARD_DB_URL=postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE.
   secret.example.yaml shows the same as a manifest. Never commit or apply it with its
   placeholders: it is not in kustomization.yaml for that reason.

3. Apply the manifests (not `kubectl apply -f .`: that would apply the template too):

     kubectl apply{ns} -k .
     kubectl rollout status{ns} deployment/{name}

4. Check and call it. Auth is on: callers send a Dockyard API token
   (Authorization: Bearer dy_...); the health routes need none.

     kubectl port-forward{ns} service/{name} 8080:{service_port}
     curl -s http://localhost:8080/v2/health/ready
     # in the cluster: {url}/endpoints/{endpoint}/predict

Notes
- Artifact root: {artifact_root}. Pods read model packages from it and write the
  prediction log there: they need read and write access (workload identity / IRSA, or AWS_*
  keys in the Secret).
- The pods answer to these Host names only: the Service's in-cluster names, the pod IP and
  loopback. Behind an Ingress, re-export with --host NAME for its host name.
- Prometheus scrapes /metrics through the annotations on service.yaml (and the probes reach
  the pods by their IP, which is why the pod IP is an allowed host).
- Rolling updates start a new pod before stopping an old one (maxUnavailable 0); a stopping pod
  keeps serving through its preStop sleep so requests in flight finish.
- {scaling}
"""


def _dump(doc: Mapping[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, width=100))


# -- writing -----------------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_folder(out_dir: Path, files: Mapping[str, bytes], force: bool) -> list[Path]:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InvalidInput(f"{out_dir} exists and is not a folder")
        present = sorted(p.name for p in out_dir.iterdir())
        if present and not force:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise AlreadyExists(
                f"folder {out_dir} is not empty ({shown}); choose a new folder, or pass "
                "force=True (--force) to replace the files it writes there"
            )
        for fname, data in files.items():
            _write_atomically(out_dir / fname, data)
        # A manifest of an earlier export that this one does not write (hpa.yaml after
        # autoscale=False) would still be applied by `kubectl apply -f`.
        for stale in _GENERATED - set(files):
            (out_dir / stale).unlink(missing_ok=True)
        return [out_dir / f for f in files]
    # A new folder appears whole: written beside it, then renamed into place.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
            os.chmod(tmp / fname, 0o644)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            raise AlreadyExists(
                f"folder {out_dir} appeared while writing; export again (with force=True to "
                "replace its files)"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out_dir / f for f in files]


# -- the export --------------------------------------------------------------------------------


def export_kubernetes(
    endpoint: str,
    out_dir: Path | str,
    *,
    image: str,
    artifact_root: str,
    db_url_secret: str = DEFAULT_SECRET,
    replicas: int = 2,
    min_replicas: int = 2,
    max_replicas: int = 10,
    autoscale: bool = True,
    cpu_target: int = 70,
    cpu_request: str = "500m",
    memory_request: str = "512Mi",
    memory_limit: str = "1Gi",
    port: int = 8080,
    service_port: int = 80,
    workers: int = 1,
    namespace: str | None = None,
    name: str | None = None,
    dockyard_version: str | None = None,
    wheel: Path | str | None = None,
    extras: Sequence[str] = (),
    trusted_modules: str | None = None,
    extra_hosts: Sequence[str] = (),
    service_account: str | None = None,
    cluster_domain: str = "cluster.local",
    cache_size: str = "2Gi",
    pre_stop_seconds: int = 10,
    termination_grace_seconds: int = 45,
    healthcheck: bool = True,
    force: bool = False,
) -> list[Path]:
    """Write a Dockerfile and Kubernetes manifests that run ``dockyard serve`` for ``endpoint``.

    Parameters
    ----------
    endpoint:
        The endpoint's name (as in the store); resource names derive from it unless ``name``.
    out_dir:
        The folder to write; refused when it is not empty, unless ``force``.
    image:
        The image reference the Deployment runs: where you push the image built from
        ``out_dir/Dockerfile``.
    artifact_root:
        ``DOCKYARD_ARTIFACT_ROOT`` of the pods: object storage they can reach (a local folder
        gets a :class:`DockyardWarning`).
    db_url_secret:
        Name of the Secret holding ``DOCKYARD_DB_URL`` and the optional keys
        (:data:`OPTIONAL_SECRET_KEYS`); only its name is written.
    replicas:
        The Deployment's replica count when ``autoscale`` is off; with it on the HPA owns the
        count (``min_replicas`` .. ``max_replicas`` at ``cpu_target`` percent of the request).
    wheel:
        A local dockyard wheel to install instead of ``dockyard==dockyard_version`` from the
        package index; copied into ``out_dir``.
    extras:
        Extras of dockyard to install besides ``serving`` and ``postgres`` (e.g. ``xgboost``,
        ``onnx``, ``encryption``).

    Returns the paths written, in order.
    """
    # Check everything before writing anything.
    check_endpoint_name(endpoint)
    rname = (
        _check_name(name, "name (of the Kubernetes resources)", "rfc1035")
        if name is not None
        else kubernetes_name(endpoint)
    )
    secret = _check_name(db_url_secret, "the Secret's name", "subdomain")
    if namespace is not None:
        _check_name(namespace, "namespace", "rfc1123")
    if service_account is not None:
        _check_name(service_account, "service account", "subdomain")
    _check_image(image)
    _check_artifact_root(artifact_root)
    problem = local_artifact_root_problem(artifact_root)
    if problem:
        warnings.warn(problem, DockyardWarning, stacklevel=2)
    version = dockyard_version if dockyard_version is not None else _version()
    if not isinstance(version, str) or not _VERSION.match(version):
        raise InvalidInput(f"dockyard version must be a version like 0.1.0, got {version!r}")
    replicas = _int(replicas, "replicas", 1, 1000)
    min_replicas = _int(min_replicas, "min_replicas", 1, 1000)
    max_replicas = _int(max_replicas, "max_replicas", 1, 1000)
    if min_replicas > max_replicas:
        raise InvalidInput(
            f"min_replicas ({min_replicas}) must not exceed max_replicas ({max_replicas})"
        )
    cpu_target = _int(cpu_target, "cpu_target (percent of the CPU request)", 1, 1000)
    # Ports below 1024 need a capability the container drops.
    port = _int(port, "port", 1024, 65535)
    service_port = _int(service_port, "service_port", 1, 65535)
    workers = _int(workers, "workers", 1, 64)
    pre_stop_seconds = _int(pre_stop_seconds, "pre_stop_seconds", 0, 300)
    termination_grace_seconds = _int(
        termination_grace_seconds, "termination_grace_seconds", 1, 3600
    )
    if termination_grace_seconds < pre_stop_seconds + 5:
        raise InvalidInput(
            f"termination_grace_seconds ({termination_grace_seconds}) must leave at least 5 "
            f"seconds after the preStop sleep ({pre_stop_seconds}) to finish requests"
        )
    _quantity(cpu_request, "cpu_request", cpu=True)
    if _quantity(memory_request, "memory_request") > _quantity(memory_limit, "memory_limit"):
        raise InvalidInput(
            f"memory_request ({memory_request}) must not exceed memory_limit ({memory_limit})"
        )
    _quantity(cache_size, "cache_size")
    if not isinstance(cluster_domain, str) or not _HOST.match(cluster_domain):
        raise InvalidInput(f"cluster_domain must be a DNS name, got {cluster_domain!r}")
    hosts = list(extra_hosts)
    for h in hosts:
        if not isinstance(h, str) or not _HOST.match(h) or ".." in h:
            raise InvalidInput(
                f"extra host {h!r} must be a DNS name or IP address (or .domain for it and its "
                "subdomains)"
            )
    all_extras = list(dict.fromkeys([*_DEFAULT_EXTRAS, *extras]))
    for e in all_extras:
        if not isinstance(e, str) or not _EXTRA.match(e):
            raise InvalidInput(f"extra {e!r} must be an extra's name like 'onnx'")
    if trusted_modules is not None and (
        not isinstance(trusted_modules, str)
        or not re.fullmatch(r"[A-Za-z0-9_.,* ]+", trusted_modules)
    ):
        raise InvalidInput(
            f"trusted_modules must be comma-separated module names, got {trusted_modules!r}"
        )
    wheel_path: Path | None = None
    if wheel is not None:
        wheel_path = Path(wheel)
        if wheel_path.suffix != ".whl" or not wheel_path.is_file():
            raise InvalidInput(f"wheel {str(wheel_path)!r} is not a .whl file")
        if not re.fullmatch(r"[A-Za-z0-9._+-]+\.whl", wheel_path.name):
            raise InvalidInput(f"wheel file name {wheel_path.name!r} has unexpected characters")
    scheme = urlsplit(artifact_root).scheme.lower()
    packages = [_FSSPEC_PACKAGES[scheme]] if scheme in _FSSPEC_PACKAGES else []

    labels = _labels(rname, version)
    resources = {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        # No CPU limit: throttling a model server hurts latency; the HPA adds replicas instead.
        "limits": {"memory": memory_limit},
    }
    docs: dict[str, dict[str, Any]] = {
        "deployment.yaml": _deployment(
            endpoint=endpoint,
            name=rname,
            namespace=namespace,
            labels=labels,
            image=image,
            secret=secret,
            artifact_root=artifact_root,
            trusted_modules=trusted_modules,
            allowed_hosts=_allowed_hosts(rname, cluster_domain, hosts),
            replicas=None if autoscale else replicas,
            port=port,
            workers=workers,
            resources=resources,
            pre_stop_seconds=pre_stop_seconds,
            termination_grace_seconds=termination_grace_seconds,
            cache_size=cache_size,
            service_account=service_account,
        ),
        "service.yaml": _service(rname, namespace, labels, port, service_port),
    }
    if autoscale:
        docs["hpa.yaml"] = _hpa(rname, namespace, labels, min_replicas, max_replicas, cpu_target)
    docs["pdb.yaml"] = _pdb(rname, namespace, labels)
    docs["kustomization.yaml"] = _kustomization(list(docs))

    files: dict[str, bytes] = {
        "Dockerfile": _dockerfile(
            endpoint=endpoint,
            version=version,
            extras=all_extras,
            packages=packages,
            wheel_name=wheel_path.name if wheel_path else None,
            port=port,
            workers=workers,
            healthcheck=healthcheck,
        ).encode(),
        ".dockerignore": b"# Only the wheel (if any) goes into the build context.\n*\n!*.whl\n",
    }
    if wheel_path is not None:
        files[wheel_path.name] = wheel_path.read_bytes()
    header = f"# Generated by `dockyard endpoints export` for endpoint {endpoint!r}.\n"
    files |= {fname: (header + _dump(doc)).encode() for fname, doc in docs.items()}
    files["secret.example.yaml"] = _secret_example(secret, namespace, endpoint).encode()
    files["README.txt"] = _readme(
        endpoint=endpoint,
        name=rname,
        namespace=namespace,
        image=image,
        secret=secret,
        artifact_root=artifact_root,
        service_port=service_port,
        cluster_domain=cluster_domain,
        autoscale=autoscale,
        files=list(files),
    ).encode()
    return _write_folder(Path(out_dir), files, force)
