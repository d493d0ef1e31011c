"""Keep secrets out of logs and messages: one scrubber, and a logging filter that applies it.

What counts as a secret here: Dockyard API tokens (``dy_`` + random text, whatever field or
header they sit in), bearer credentials, the password in a URL's user info
(``postgresql://user:pw@host``, ``https://user:pw@host``), and the value of query parameters or
``key=value`` pairs whose name says secret (``token``, ``password``, ``api_key``, ``secret``...).
Each is replaced by ``***``; the rest of the line stays readable.

The server installs :class:`SecretFilter` on every handler uvicorn and Dockyard log through
(access lines included: a token pasted into a query string is scrubbed there too), and the CLI
passes its error messages through :func:`scrub`. Secrets that Dockyard handles itself (the
admin token, encryption keys, token hashes) are never formatted into a message in the first
place; this is the net under that rule, for values a user or a library puts where they do not
belong.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SecretFilter", "scrub"]

_MASK = "***"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Dockyard tokens anywhere (at least 16 characters after the prefix, so "dy_id" survives).
    (re.compile(r"\bdy_[A-Za-z0-9_\-]{16,}"), "dy_" + _MASK),
    # Authorization headers and bare bearer credentials.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + _MASK),
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1" + _MASK + "@"),
    # name=value where the name says secret (*token*, *password*, *secret*, *key: query
    # strings, config dumps, env listings).
    (
        re.compile(
            r"(?i)\b([A-Za-z0-9_\-]*(?:token|password|passwd|secret)[A-Za-z0-9_\-]*"
            r"|[A-Za-z0-9_\-]*key)=([^&\s\"',;]+)"
        ),
        r"\1=" + _MASK,
    ),
)


def scrub(text: str) -> str:
    """``text`` with every secret the patterns above recognise replaced by ``***``."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretFilter(logging.Filter):
    """Scrubs a log record's message, its string arguments and its exception text.

    Arguments are scrubbed one by one rather than the message being formatted early, because
    formatters such as uvicorn's access formatter read ``record.args`` themselves.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: scrub(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


def install(logger_names: tuple[str, ...] = ("", "uvicorn", "uvicorn.access", "dockyard")) -> None:
    """Add one :class:`SecretFilter` to every handler of the named loggers (idempotent)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, SecretFilter) for f in handler.filters):
                handler.addFilter(SecretFilter())
