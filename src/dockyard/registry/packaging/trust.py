"""What Dockyard will deserialise: the skops type policy and the pickle trust flag.

**skops files** (the scikit-learn flavor, and the python_function flavor when skops can hold
the object). skops' secure format records every type the file needs; skops itself trusts a
fixed set of safe defaults (NumPy, SciPy and most scikit-learn types) and reports the rest via
``skops.io.get_untrusted_types``. Dockyard's policy:

* *At save* the types outside skops' defaults are those of the model the saving user just
  built and holds in memory; by saving it they vouch for them. Dockyard records them in the
  manifest's ``skops_trusted_types`` (the saving user "accepted" them).
* *At load* Dockyard computes the untrusted types of the verified file bytes and trusts
  exactly the recorded ones: any type in the file that is neither a skops default nor recorded
  raises :class:`~dockyard.registry.packaging.UntrustedModel` naming the types. The recorded
  list is only as trustworthy as the manifest, so it is covered by the package digest: load
  with ``expected_digest=`` (the registry always does) and an edited list is refused as an
  :class:`~dockyard.core.errors.IntegrityError` before any type is looked at.
* Whatever a manifest records, types that can run commands or reach arbitrary code --
  ``builtins.eval``/``exec``/``compile``/``getattr``/``__import__``/``open``..., ``os.*``,
  ``posix.*``, ``nt.*``, ``subprocess.*``, ``importlib.*``, ``sys.*``, ``shutil.*``,
  ``socket.*``, ``pickle.*``, ``marshal.*``, ``runpy.*``, ``ctypes.*``, ``operator.attrgetter``
  and friends (:func:`dangerous_types`) -- are refused at save and at load. This deny list is
  a second line of defence; the allow list above is the first.

**pickle / joblib / cloudpickle** can run arbitrary code when read. Dockyard writes them only
when ``save_model(..., trust_pickle=True)`` and reads them only when
``load_model(..., trust_pickle=True)``; the manifest records ``"trusted_pickle": true`` and
the registry's audit event carries the flag.

**On a server** the package's author is not the one who pays for a malicious file, so the
author's record is not enough: a server never unpickles (the REST routes refuse
``trust_pickle``), and it honours recorded skops types only from the module roots an operator
lists (``trusted_modules``: the ``DOCKYARD_TRUSTED_MODULES`` setting, by default the ML
libraries of :data:`DEFAULT_TRUSTED_MODULES`). An editor who uploads a package recording
``mypackage.Evil`` cannot make the server build it; the operator adds ``mypackage`` to the
setting when the team's own classes must load there.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any, Final

from dockyard.registry.packaging.errors import UntrustedModel

__all__ = [
    "DANGEROUS_EXACT",
    "DANGEROUS_PREFIXES",
    "DEFAULT_TRUSTED_MODULES",
    "dangerous_types",
    "dump_pickle",
    "load_pickle",
    "parse_trusted_modules",
    "require_pickle_trust",
    "skops_dumps",
    "skops_loads",
]

DANGEROUS_EXACT: Final[frozenset[str]] = frozenset(
    {
        f"builtins.{name}"
        for name in (
            "eval",
            "exec",
            "compile",
            "getattr",
            "setattr",
            "delattr",
            "__import__",
            "open",
            "input",
            "breakpoint",
            "globals",
            "locals",
            "vars",
            "exit",
            "quit",
            "help",
            "__loader__",
            "__builtins__",
        )
    }
    | {
        "operator.attrgetter",
        "operator.methodcaller",
        "functools.reduce",
        "types.FunctionType",
        "types.CodeType",
        "types.LambdaType",
        "types.MethodType",
        "numpy.load",
        "numpy.lib.npyio.load",
        "numpy.fromfile",
        "numpy.memmap",
        "pandas.read_pickle",
        "joblib.load",
        "code.InteractiveInterpreter",
        "code.InteractiveConsole",
        "webbrowser.open",
    }
)
DANGEROUS_PREFIXES: Final[tuple[str, ...]] = tuple(
    f"{root}."
    for root in (
        "os",
        "posix",
        "nt",
        "subprocess",
        "importlib",
        "sys",
        "shutil",
        "socket",
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "runpy",
        "ctypes",
        "pty",
        "multiprocessing",
        "signal",
        "codeop",
        "dill",
        "cloudpickle",
        "asyncio",
        "threading",
        "_thread",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "tempfile",
        "glob",
        "pathlib",
        "io",
        "_io",
        "platform",
        "_posixsubprocess",
    )
)
_DANGEROUS_MODULES: Final[frozenset[str]] = frozenset(p[:-1] for p in DANGEROUS_PREFIXES)


#: Module roots whose recorded skops types a server honours unless told otherwise.
DEFAULT_TRUSTED_MODULES: Final[tuple[str, ...]] = (
    "sklearn",
    "numpy",
    "scipy",
    "pandas",
    "skops",
    "xgboost",
    "lightgbm",
)


def parse_trusted_modules(text: str | None) -> tuple[str, ...] | None:
    """``DOCKYARD_TRUSTED_MODULES`` as module roots; ``*`` means every recorded type (None)."""
    if text is None:
        return DEFAULT_TRUSTED_MODULES
    roots = tuple(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))
    if "*" in roots:
        return None
    for root in roots:
        if not all(part.isidentifier() for part in root.split(".")):
            from dockyard.core.errors import ConfigError

            raise ConfigError(
                f"DOCKYARD_TRUSTED_MODULES entry {root!r} is not a module name (like "
                "'sklearn' or 'mycompany.models'); separate entries with commas"
            )
    return roots


def _under(name: str, roots: Sequence[str]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def dangerous_types(types: Iterable[str]) -> list[str]:
    """The entries of ``types`` that Dockyard refuses to deserialise in any case."""
    out = []
    for name in types:
        if (
            name in DANGEROUS_EXACT
            or name in _DANGEROUS_MODULES
            or name.startswith(DANGEROUS_PREFIXES)
        ):
            out.append(name)
    return sorted(set(out))


def _refuse_dangerous(types: Iterable[str], file: str, when: str) -> None:
    bad = dangerous_types(types)
    if bad:
        raise UntrustedModel(
            f"model file {file!r} {when} type(s) that can run arbitrary code: "
            f"{', '.join(bad)}; Dockyard never deserialises these",
            file=file,
            types=bad,
        )


def skops_dumps(model: Any, file: str) -> tuple[bytes, list[str]]:
    """Serialise with skops; return the bytes and the types beyond skops' defaults."""
    import skops.io as sio

    data = sio.dumps(model)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)))
    _refuse_dangerous(untrusted, file, "would need")
    return data, untrusted


def skops_loads(
    data: bytes,
    recorded: Iterable[str],
    file: str,
    trusted_modules: Sequence[str] | None = None,
) -> Any:
    """Load verified skops bytes, trusting skops' defaults plus exactly the ``recorded`` types
    (only those under ``trusted_modules`` when given: the server's policy)."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    recorded = sorted(set(recorded))
    _refuse_dangerous(recorded, file, "is recorded as trusting")
    withheld: set[str] = set()
    if trusted_modules is not None:
        withheld = {t for t in recorded if not _under(t, trusted_modules)}
        recorded = [t for t in recorded if t not in withheld]
    # One pass: skops audits the whole tree against the trusted list before it constructs
    # anything. Only when it refuses do we walk the file again to name every offending type.
    try:
        return sio.loads(data, trusted=recorded)
    except UntrustedTypesFoundException:
        pass
    except (zipfile.BadZipFile, ValueError, KeyError) as exc:  # a corrupt archive
        raise UntrustedModel(
            f"model file {file!r} is not a readable skops file ({type(exc).__name__}: {exc})",
            file=file,
        ) from None
    untrusted = sorted(set(sio.get_untrusted_types(data=data)))
    _refuse_dangerous(untrusted, file, "needs")
    unknown = [t for t in untrusted if t not in set(recorded)]
    held = [t for t in unknown if t in withheld]
    if held:
        roots = sorted({t.split(".")[0] for t in held})
        raise UntrustedModel(
            f"model file {file!r} needs type(s) its author trusted but this server does not: "
            f"{', '.join(held)}. A server honours recorded types only from the modules in "
            f"DOCKYARD_TRUSTED_MODULES ({', '.join(trusted_modules or ()) or 'none'}); an "
            f"operator who trusts {', '.join(roots)} can add it there",
            file=file,
            types=held,
        )
    raise UntrustedModel(
        f"model file {file!r} needs type(s) that are neither skops' safe defaults nor "
        f"recorded as trusted in the package's manifest: {', '.join(unknown)}; refusing to "
        "load it. If you trust the author, load the object yourself with "
        "skops.io.load(..., trusted=[...]) and save it again with Dockyard",
        file=file,
        types=unknown,
    )


def require_pickle_trust(trust_pickle: bool, file: str, serialization: str, action: str) -> None:
    """Refuse a pickle-family file unless the caller passed ``trust_pickle=True``."""
    if not trust_pickle:
        raise UntrustedModel(
            f"refusing to {action} {file!r} with {serialization}: {serialization} can run "
            "arbitrary code when the file is read. Pass trust_pickle=True (CLI: --trust-pickle) "
            "only if you trust whoever wrote this model",
            file=file,
            serialization=serialization,
            flag="trust_pickle",
        )


def dump_pickle(model: Any, serialization: str) -> bytes:
    """Serialise with ``pickle``, ``cloudpickle`` or ``joblib`` (the caller checked trust)."""
    if serialization == "cloudpickle":
        import cloudpickle

        return bytes(cloudpickle.dumps(model))
    if serialization == "joblib":
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()
    import pickle

    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def load_pickle(data: bytes, serialization: str) -> Any:
    """Deserialise verified bytes written by :func:`dump_pickle` (the caller checked trust)."""
    if serialization == "joblib":
        import joblib

        return joblib.load(io.BytesIO(data))
    if serialization == "cloudpickle":
        import cloudpickle

        return cloudpickle.loads(data)
    import pickle

    return pickle.loads(data)
