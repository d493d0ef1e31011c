"""The secret scrubber and its logging filter: tokens, passwords and keys never reach a log."""

from __future__ import annotations

import logging

import pytest

from dockyard.core.secrets import SecretFilter, install, scrub

TOKEN = "dy_" + "A1b2-C3_d4" * 4


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"token {TOKEN} was used", TOKEN, "token dy_*** was used"),
        (f"Authorization: Bearer {TOKEN}", TOKEN, "Authorization: Bearer dy_***"),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop", "Bearer ***"),
        ("postgresql+psycopg://ana:pa55w0rd@db:5432/x", "pa55w0rd", "ana:***@db:5432"),
        ("https://user:hunter22@host/path", "hunter22", "https://user:***@host"),
        ("GET /x?token=abc123&page=2", "abc123", "token=***&page=2"),
        ("DOCKYARD_ENCRYPTION_KEY=c2VjcmV0a2V5", "c2VjcmV0a2V5", "ENCRYPTION_KEY=***"),
        ("api_key=sk-live-1 password=x9y8 secret=s3", "sk-live-1", "api_key=*** password=***"),
        ("DOCKYARD_REDACTION_KEY=0123456789abcdef", "0123456789abcdef", "REDACTION_KEY=***"),
    ],
)
def test_scrub_hides_the_secret_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    out = scrub(text)
    assert secret not in out
    assert kept in out


def test_scrub_leaves_ordinary_text_alone() -> None:
    for text in ("run 3f2a finished", "dy_id", "http://host:8080/api", "tokens: 3", ""):
        assert scrub(text) == text


def test_the_filter_scrubs_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("dockyard.test-secrets")
    handler = logging.StreamHandler()
    records: list[str] = []
    handler.emit = lambda record: records.append(handler.format(record))  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        install(("dockyard.test-secrets",))
        install(("dockyard.test-secrets",))  # idempotent
        assert sum(isinstance(f, SecretFilter) for f in handler.filters) == 1
        logger.warning("login with %s from %s", TOKEN, "10.0.0.1")
        logger.warning("GET %s", {"q": "x"})
        try:
            raise ValueError(f"bad token {TOKEN}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert TOKEN not in text
    assert "login with dy_*** from 10.0.0.1" in text
    assert "ValueError: bad token dy_***" in text
