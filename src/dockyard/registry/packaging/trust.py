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
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import Any, Final

from dockyard.registry.packaging.errors import UntrustedModel

__all__ = [
    "DANGEROUS_EXACT",
    "DANGEROUS_PREFIXES",
    "dangerous_types",
    "dump_pickle",
    "load_pickle",
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


def skops_loads(data: bytes, recorded: Iterable[str], file: str) -> Any:
    """Load verified skops bytes, trusting skops' defaults plus exactly the ``recorded`` types."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    recorded = sorted(set(recorded))
    _refuse_dangerous(recorded, file, "is recorded as trusting")
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
