"""`dockyard endpoints export ENDPOINT --kubernetes DIR`: a Dockerfile and manifests that run
`dockyard serve` for an endpoint on Kubernetes (see :mod:`dockyard.serving.kubernetes`).

The command function is registered by the ``dockyard endpoints`` group. The endpoint must exist
in the store (read through the client: the local store, or the server in remote mode); the
artifact root defaults to the configured one, with a warning when pods could not reach it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer

#: Flavor of a model version -> the dockyard extra its image needs.
_FLAVOR_EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "onnx": "onnx"}


def _needed_extras(client: Any, endpoint: Any) -> list[str]:
    """Extras the endpoint's current model versions need (their flavors); best effort."""
    from dockyard.core.errors import DockyardError

    extras: list[str] = []
    for ref in endpoint.policy.refs().values():
        try:
            flavor = client.registry.get_model_version(ref.model, ref.version).flavor
        except DockyardError:
            continue
        extra = _FLAVOR_EXTRAS.get(flavor)
        if extra and extra not in extras:
            extras.append(extra)
    return extras


def export(
    endpoint: str = typer.Argument(..., help="The endpoint to serve (it must exist)."),
    kubernetes: Path = typer.Option(
        ...,
        "--kubernetes",
        help="Folder to write the Dockerfile, the Kubernetes manifests and a README into.",
    ),
    image: str = typer.Option(
        ...,
        "--image",
        help="Image the Deployment runs (registry/name:tag): build it from the folder's "
        "Dockerfile and push it there.",
    ),
    artifact_root: str = typer.Option(
        None,
        "--artifact-root",
        help="DOCKYARD_ARTIFACT_ROOT of the pods, object storage they can reach; default: the "
        "configured one.",
    ),
    db_secret: str = typer.Option(
        "dockyard-serving",
        "--db-secret",
        help="Secret holding DOCKYARD_DB_URL (and optional keys); only its name is written.",
    ),
    namespace: str = typer.Option(None, "--namespace", "-n", help="Namespace of the resources."),
    name: str = typer.Option(
        None, "--name", help="Name of the Kubernetes resources; default: from the endpoint's."
    ),
    min_replicas: int = typer.Option(2, "--min-replicas", help="Fewest pods (autoscaler)."),
    max_replicas: int = typer.Option(10, "--max-replicas", help="Most pods (autoscaler)."),
    cpu_target: int = typer.Option(
        70, "--cpu-target", help="Autoscaler target: average CPU use, percent of the request."
    ),
    no_autoscale: bool = typer.Option(
        False, "--no-autoscale", help="No HorizontalPodAutoscaler: a fixed --replicas."
    ),
    replicas: int = typer.Option(2, "--replicas", help="Pods, with --no-autoscale."),
    cpu_request: str = typer.Option("500m", "--cpu-request", help="CPU request per pod."),
    memory_request: str = typer.Option("512Mi", "--memory-request", help="Memory request."),
    memory_limit: str = typer.Option("1Gi", "--memory-limit", help="Memory limit per pod."),
    port: int = typer.Option(8080, "--port", help="Port `dockyard serve` listens on."),
    workers: int = typer.Option(1, "--workers", help="Worker processes per pod."),
    host: list[str] = typer.Option(
        None,
        "--host",
        help="An extra Host name the pods answer to, e.g. an Ingress's (repeatable).",
    ),
    extra: list[str] = typer.Option(
        None,
        "--extra",
        help="A dockyard extra to install besides serving and postgres (repeatable); the "
        "flavors of the endpoint's current models are added by themselves.",
    ),
    wheel: Path = typer.Option(
        None, "--wheel", help="Install this dockyard wheel instead of the released version."
    ),
    dockyard_version: str = typer.Option(
        None, "--dockyard-version", help="Dockyard version to install; default: this one."
    ),
    service_account: str = typer.Option(
        None, "--service-account", help="Service account of the pods (workload identity)."
    ),
    trusted_modules: str = typer.Option(
        None,
        "--trusted-modules",
        help="DOCKYARD_TRUSTED_MODULES of the pods; default: the built-in list.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Write into a folder that is not empty, replacing its files."
    ),
) -> None:
    """Write a Dockerfile and Kubernetes manifests that serve the endpoint."""
    from dockyard.client.client import Client
    from dockyard.core.config import load_settings
    from dockyard.core.errors import DockyardWarning
    from dockyard.serving.kubernetes import export_kubernetes

    settings = load_settings()
    client = Client(settings=settings)
    ep = client.endpoints.get_endpoint(endpoint)  # NotFound when it does not exist
    extras = list(dict.fromkeys([*_needed_extras(client, ep), *(extra or [])]))
    if (settings.encryption_key or settings.key_provider) and "encryption" not in extras:
        extras.append("encryption")  # the store's artifacts are encrypted: pods decrypt
    root = artifact_root or settings.resolved_artifact_root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = export_kubernetes(
            ep.name,
            kubernetes,
            image=image,
            artifact_root=root,
            db_url_secret=db_secret,
            replicas=replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            autoscale=not no_autoscale,
            cpu_target=cpu_target,
            cpu_request=cpu_request,
            memory_request=memory_request,
            memory_limit=memory_limit,
            port=port,
            workers=workers,
            namespace=namespace,
            name=name,
            dockyard_version=dockyard_version,
            wheel=wheel,
            extras=extras,
            trusted_modules=trusted_modules,
            extra_hosts=host or [],
            service_account=service_account,
            force=force,
        )
    for w in caught:
        if issubclass(w.category, DockyardWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not client.is_remote and settings.resolved_db_url.startswith("sqlite"):
        typer.echo(
            f"warning: endpoint {ep.name} was read from a SQLite store here; the pods use the "
            f"store named in Secret {db_secret} (PostgreSQL): it must hold the endpoint too",
            err=True,
        )
    typer.echo(f"wrote {len(written)} files to {kubernetes} for endpoint {ep.name}:")
    for path in written:
        typer.echo(f"  {path.name}")
    typer.echo(f"next: build and push {image}, create Secret {db_secret}, apply: see README.txt")
