"""The one exception hierarchy: codes, statuses and exit codes are stable and unique."""

from __future__ import annotations

from dockyard.core import errors


def test_every_error_class_maps_back_from_its_code() -> None:
    classes = [errors.DockyardError, *errors._all_subclasses(errors.DockyardError)]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), "two error classes share a code"
    for cls in classes:
        assert errors.error_class_for_code(cls.code) is cls
    assert errors.error_class_for_code("nope") is errors.DockyardError


def test_user_mistakes_are_4xx_and_have_nonzero_exit_codes() -> None:
    for cls in (
        errors.InvalidInput,
        errors.NotFound,
        errors.Conflict,
        errors.AlreadyExists,
        errors.PermissionDenied,
        errors.UnsafePath,
        errors.PayloadTooLarge,
    ):
        assert 400 <= cls.http_status < 500
        assert cls.exit_code != 0
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    err = errors.Conflict("param 'a' is already '1'", key="a")
    assert err.to_dict() == {
        "code": "conflict",
        "message": "param 'a' is already '1'",
        "details": {"key": "a"},
    }
