"""Errors of the package layer (both part of the one hierarchy in :mod:`dockyard.core.errors`)."""

from __future__ import annotations

from dockyard.core.errors import InvalidInput, PermissionDenied

__all__ = ["ModelInputError", "UntrustedModel"]


class ModelInputError(InvalidInput):
    """Prediction input that breaks the model's signature.

    The message names the column (or the tensor) and the rule; ``details`` carries ``rule``
    (``missing_column``, ``wrong_type``, ``not_nullable``, ``extra_column``, ``wrong_shape``,
    ``bad_input``) and ``column`` when one is concerned.
    """

    code = "model_input_error"


class UntrustedModel(PermissionDenied):
    """Loading (or saving) the package would run code Dockyard cannot vouch for.

    Raised for a skops file holding types neither skops' defaults nor the package's recorded
    list allow (or any type on the always-refused list), and for a pickle-based package
    loaded without ``trust_pickle=True``. ``details`` names the types or the file and the flag.
    """

    code = "untrusted_model"
