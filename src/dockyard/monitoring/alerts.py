"""Alert webhooks: signed, retried with backoff, kept as dead letters, checked against SSRF.

Purpose: when a monitor raises an event (drift, quality, performance...), the monitor service
calls :func:`enqueue_for_event` inside its own transaction, which stores one ``pending`` row
of ``alert_deliveries`` per matching :class:`WebhookTarget`. :class:`AlertDispatcher` (the
server's background loop, or ``dockyard alerts deliver``) sends due deliveries;
:class:`AlertService` lists, shows, replays and delivers on behalf of a user (permissions and
audit).

Decisions
    * **Delivery semantics: at least once.** A delivery is claimed in one transaction (its
      attempt counted, its ``next_attempt`` pushed past a lease of :data:`LEASE_S`), sent
      outside any transaction, and its outcome recorded in a second transaction. A crash
      between sending and recording leaves it pending: it is sent again when the lease runs
      out. Never lost, possibly duplicated: receivers dedupe on ``X-Dockyard-Delivery``.
      Two replicas never claim the same row at once (PostgreSQL: ``FOR UPDATE SKIP LOCKED``;
      SQLite: the write lock). See :mod:`dockyard.store._alerts_sql`.
    * **Retries.** Any answer but 2xx, a timeout, a connection error, a refused target: the
      delivery is retried after ``min(1 h, 2 s * 2**(failures - 1))``, less up to 20 %
      jitter (so a fleet of deliveries that failed together does not retry in lock step), or
      after ``Retry-After`` (seconds, capped at 1 h) when a 429/503 asks for longer. After
      ``max_attempts`` (8 by default: about four minutes of retries) it is ``dead``: kept,
      listed, and :meth:`AlertService.replay` makes it pending again with fresh attempts.
    * **Permanent failures die sooner.** A 4xx answer other than 408/429 (wrong path, rejected
      signature), a target refused by the address check, or a missing signing key will not fix
      themselves within seconds; such a delivery goes dead after at most
      :data:`PERMANENT_MAX_ATTEMPTS` attempts instead of ``max_attempts`` (not after one: a
      receiver being redeployed can answer 404 for a moment). Fix the cause, then replay.
    * **Signing.** The body is the canonical JSON of the stored payload (sorted keys, no
      spaces, UTF-8; non-finite numbers become null), the same bytes on every attempt.
      Headers: ``X-Dockyard-Event`` (the kind), ``X-Dockyard-Delivery`` (the id),
      ``X-Dockyard-Timestamp`` (unix seconds of this attempt) and ``X-Dockyard-Signature:
      sha256=<hex HMAC-SHA256(key, b"<timestamp>." + body)>``; receivers check it with
      :func:`verify_signature` (constant time, timestamp within 5 minutes against replays).
      The key is read at each attempt from the environment variable the target names
      (``secret_env``, default ``DOCKYARD_WEBHOOK_SECRET``); only that *name* is stored. A
      target that signs (the default) whose variable is unset is **not** sent unsigned: the
      attempt fails with an error naming the variable. ``sign: false`` sends unsigned.
    * **SSRF.** A target URL must be http(s), without user info (``user:pass@``). Its host is
      resolved and refused if *any* address is loopback, private, link-local (including the
      cloud metadata address 169.254.169.254 and fe80::/10), multicast, unspecified,
      reserved or otherwise not globally routable -- IPv4-mapped (``::ffff:a.b.c.d``), 6to4
      and NAT64 IPv6 addresses are judged by the IPv4 address they embed -- unless the target
      says ``allow_private: true``. Checked at declaration (:func:`declare_target`) and again
      at each attempt, since DNS changes.
    * **DNS rebinding.** The attempt connects to the address that was just checked, never to
      a second resolution of the name: the request URL's host is replaced by that IP, the
      ``Host`` header keeps the name, and on https the httpcore request extension
      ``sni_hostname`` keeps the TLS server name -- so SNI *and certificate verification*
      are still done against the host name. All public httpx/httpcore API, no custom
      transport. Proxies from the environment are ignored (``trust_env=False``: a proxy
      would resolve the name itself), and redirects are never followed (a 3xx is a failure:
      it could point anywhere). Certificates are verified against httpx's bundle (certifi),
      or the bundle named by ``SSL_CERT_FILE`` in the ``env`` given to the dispatcher (a
      private CA for an internal receiver).
    * **Errors** stored in ``last_error`` and logged are short (at most
      :data:`ERROR_CHARS` characters, of which at most 200 of response body), passed through
      :func:`dockyard.core.secrets.scrub`, never contain the signing key, and name the target
      by host only (a URL's query string may hold a token).

Boundaries: a service module (monitoring), framework-free; httpx is imported on first send.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from dockyard.core.alert_entities import DELIVERY_STATUSES, AlertDelivery, safe_url
from dockyard.core.errors import Conflict, InvalidInput, NotFound
from dockyard.core.secrets import scrub
from dockyard.core.serving_entities import check_endpoint_name
from dockyard.core.wire import json_nulls
from dockyard.governance.audit import Actor, record_event
from dockyard.governance.permissions import ENDPOINT_DEPLOY, ENDPOINT_READ, Authorizer, enforced

if TYPE_CHECKING:
    from dockyard.store.base import Store, Unit

__all__ = [
    "ALERT_PERMISSIONS",
    "DEFAULT_SECRET_ENV",
    "AlertDelivery",
    "AlertDispatcher",
    "AlertService",
    "DeliveryStats",
    "WebhookTarget",
    "backoff_delay",
    "canonical_json",
    "check_target",
    "declare_target",
    "enqueue_for_event",
    "parse_target",
    "sign_payload",
    "verify_signature",
]

log = logging.getLogger("dockyard.monitoring.alerts")

DEFAULT_SECRET_ENV = "DOCKYARD_WEBHOOK_SECRET"
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 3600.0
JITTER = 0.2
#: A permanent failure (4xx but 408/429, refused target, no signing key) is dead after this.
PERMANENT_MAX_ATTEMPTS = 3
#: How long a claimed delivery is kept from other senders (>= the longest possible attempt).
LEASE_S = 300.0
MAX_TIMEOUT_S = 60.0
SIGNATURE_TOLERANCE_S = 300
BODY_CHARS = 200
ERROR_CHARS = 400
MAX_URL_LENGTH = 2048
MAX_LIST = 1000

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_EVENT = re.compile(r"^[A-Za-z0-9_.:*?\-\[\]]{1,64}$")
_KIND = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_TARGET_KEYS = ("url", "allow_private", "secret_env", "events", "timeout_s", "sign")
_RETRYABLE_4XX = frozenset({408, 429})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)

Resolver = Callable[[str, int], Sequence[str]]


class Clock(Protocol):
    def time(self) -> float: ...


# -- targets -------------------------------------------------------------------------------------


def _url_problems(url: Any) -> list[str]:
    """What is wrong with ``url`` as a webhook URL, judged without resolving it."""
    if not isinstance(url, str) or not url:
        return [f"a webhook url must be a non-empty string, got {url!r}"]
    if len(url) > MAX_URL_LENGTH:
        return [f"a webhook url must be at most {MAX_URL_LENGTH} characters"]
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return ["a webhook url must not contain spaces or control characters"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"webhook url {safe_url(url)!r} is malformed ({exc})"]
    problems = []
    if parts.scheme.lower() not in ("http", "https"):
        problems.append(f"webhook url must use http or https, not {parts.scheme or 'no scheme'!r}")
    if "@" in parts.netloc:
        problems.append(
            "webhook url must not carry user info (user:password@host); authenticate the "
            "receiver with the HMAC signature, or a token in the path or query"
        )
    if not parts.hostname:
        problems.append(f"webhook url {safe_url(url)!r} names no host")
    if port == 0:
        problems.append("webhook url port must be 1 to 65535")
    return problems


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how an alert is sent.

    ``url``: http(s), no user info. ``allow_private``: allow loopback/private/link-local
    addresses (a receiver inside the cluster). ``secret_env``: the *name* of the environment
    variable holding the HMAC key (never the key). ``events``: the event kinds sent there
    (shell-style patterns, ``"*"``: all). ``timeout_s``: per connect/read/write, at most 60.
    ``sign``: False sends unsigned requests (only if you must).
    """

    url: str = field(repr=False)
    allow_private: bool = False
    secret_env: str = DEFAULT_SECRET_ENV
    events: tuple[str, ...] = ("*",)
    timeout_s: float = 5.0
    sign: bool = True

    def __post_init__(self) -> None:
        problems = _url_problems(self.url)
        if problems:
            raise InvalidInput("; ".join(problems), url=safe_url(str(self.url)))
        for name in ("allow_private", "sign"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(
                    f"webhook {name} must be true or false, got {getattr(self, name)!r}"
                )
        if not isinstance(self.secret_env, str) or not _ENV_NAME.match(self.secret_env):
            raise InvalidInput(
                "webhook secret_env must name an environment variable (letters, digits, _; "
                f"not starting with a digit), got {self.secret_env!r}"
            )
        events = self.events
        if isinstance(events, str):
            events = (events,)
        if not isinstance(events, Iterable) or isinstance(events, Mapping):
            raise InvalidInput(f"webhook events must be a list of event kinds, got {events!r}")
        events = tuple(events)
        bad = [e for e in events if not isinstance(e, str) or not _EVENT.match(e)]
        if not events or bad:
            raise InvalidInput(
                'webhook events must be a non-empty list of event kinds or patterns ("*": '
                f"all), got {list(events)!r}"
            )
        object.__setattr__(self, "events", events)
        timeout = self.timeout_s
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_TIMEOUT_S
        ):
            raise InvalidInput(
                f"webhook timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got "
                f"{timeout!r}"
            )
        object.__setattr__(self, "timeout_s", float(timeout))

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def safe_url(self) -> str:
        return safe_url(self.url)

    def matches(self, kind: str) -> bool:
        """Whether events of ``kind`` go to this target."""
        return any(fnmatchcase(kind, pattern) for pattern in self.events)

    def options(self, kind: str) -> dict[str, Any]:
        """What a delivery row keeps of this target besides its URL (never a key)."""
        return {
            "event": kind,
            "allow_private": self.allow_private,
            "secret_env": self.secret_env,
            "sign": self.sign,
            "timeout_s": self.timeout_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """The declaration, as :func:`parse_target` takes it back (the full URL: store it
        where the monitor's configuration is stored, show :attr:`safe_url` to people)."""
        return {
            "url": self.url,
            "allow_private": self.allow_private,
            "secret_env": self.secret_env,
            "events": list(self.events),
            "timeout_s": self.timeout_s,
            "sign": self.sign,
        }

    def __repr__(self) -> str:
        return (
            f"WebhookTarget({self.safe_url!r}, allow_private={self.allow_private}, "
            f"secret_env={self.secret_env!r}, events={list(self.events)!r}, "
            f"timeout_s={self.timeout_s:g}, sign={self.sign})"
        )

    @classmethod
    def from_delivery(cls, delivery: AlertDelivery) -> WebhookTarget:
        o = delivery.options
        return cls(
            url=delivery.target,
            allow_private=bool(o.get("allow_private", False)),
            secret_env=o.get("secret_env", DEFAULT_SECRET_ENV),
            timeout_s=o.get("timeout_s", 5.0),
            sign=bool(o.get("sign", True)),
        )


def parse_target(spec: WebhookTarget | Mapping[str, Any] | str) -> WebhookTarget:
    """A :class:`WebhookTarget` from ``"https://..."`` or a mapping with ``url`` and the
    optional ``allow_private``, ``secret_env``, ``events``, ``timeout_s``, ``sign``. Checks
    the syntax only (no DNS); see :func:`declare_target`."""
    if isinstance(spec, WebhookTarget):
        return spec
    if isinstance(spec, str):
        return WebhookTarget(url=spec.strip())
    if not isinstance(spec, Mapping):
        raise InvalidInput(
            f"a webhook target is a URL or a mapping with a 'url', got {type(spec).__name__}"
        )
    keys = set(spec)
    if "secret" in keys or "key" in keys:
        raise InvalidInput(
            "a webhook target never holds its signing key: put the key in an environment "
            "variable where alerts are sent and name it with 'secret_env'"
        )
    unknown = sorted(str(k) for k in keys - set(_TARGET_KEYS))
    if unknown:
        raise InvalidInput(
            f"unknown webhook target field(s) {', '.join(map(repr, unknown))}; fields: "
            + ", ".join(_TARGET_KEYS)
        )
    if "url" not in spec:
        raise InvalidInput("a webhook target needs a 'url'")
    return WebhookTarget(**{k: spec[k] for k in _TARGET_KEYS if k in spec})


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _address_problem(text: str) -> str | None:
    """Why ``text`` (an IP address) is not a public address, or None."""
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            why = _address_problem(str(embedded))
            if why is not None:
                return f"{why} (embedded IPv4 {embedded})"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local or addr in _METADATA:
        return "link-local" + (" (cloud metadata)" if addr in _METADATA else "")
    if addr.is_multicast:
        return "multicast"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_reserved:
        return "reserved"
    if addr.is_private:
        return "private"
    if not addr.is_global:
        return "not globally routable"
    return None


def _resolve_checked(
    url: str, allow_private: bool, resolver: Resolver | None = None
) -> tuple[list[str], list[str]]:
    """(problems, addresses): the checked addresses to connect to, when no problem."""
    problems = _url_problems(url)
    if problems:
        return problems, []
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        found = list((resolver or _system_resolver)(host, port))
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return [f"webhook host {host!r} does not resolve ({reason})"], []
    addresses = list(dict.fromkeys(found))
    if not addresses:
        return [f"webhook host {host!r} does not resolve"], []
    if allow_private:
        return [], addresses
    is_literal = _is_ip(host)
    for a in addresses:
        why = _address_problem(a)
        if why is not None:
            where = f"{a}" if is_literal else f"{host!r} resolves to {a}, which"
            problems.append(
                f"webhook target {where} is a {why} address; targets must be public "
                "(declare the target with allow_private: true to allow it)"
            )
    return problems, ([] if problems else addresses)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_target(
    url: str, allow_private: bool = False, *, resolver: Resolver | None = None
) -> list[str]:
    """The reasons ``url`` may not be a webhook target (empty: it may). Resolves the host; any
    resolved address that is not public refuses it, unless ``allow_private``."""
    return _resolve_checked(url, allow_private, resolver)[0]


def declare_target(
    spec: WebhookTarget | Mapping[str, Any] | str, *, resolver: Resolver | None = None
) -> WebhookTarget:
    """:func:`parse_target` and :func:`check_target`: what a monitor calls when a target is
    declared. InvalidInput naming every problem."""
    target = parse_target(spec)
    problems = check_target(target.url, target.allow_private, resolver=resolver)
    if problems:
        raise InvalidInput("; ".join(problems), url=target.safe_url)
    return target


# -- signing -------------------------------------------------------------------------------------


def canonical_json(payload: Any) -> bytes:
    """The bytes that are sent and signed: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        json_nulls(payload),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def sign_payload(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>``."""
    mac = hmac.new(_key(secret), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    signature: str,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: whether ``signature`` (the ``X-Dockyard-Signature`` header) signs
    ``body`` with ``timestamp`` (``X-Dockyard-Timestamp``) under ``secret``, and the timestamp
    is within ``tolerance_s`` of ``now`` (default: the current time). Constant-time compare;
    dedupe on ``X-Dockyard-Delivery`` as well, deliveries are at least once."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    if not isinstance(signature, str):
        return False
    expected = sign_payload(secret, ts, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def signature_headers(
    delivery_id: str, kind: str, timestamp: int, body: bytes, secret: str | bytes | None
) -> dict[str, str]:
    """The headers of one attempt (no signature header when ``secret`` is None)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Dockyard-Alerts/1",
        "X-Dockyard-Event": kind,
        "X-Dockyard-Delivery": delivery_id,
        "X-Dockyard-Timestamp": str(int(timestamp)),
    }
    if secret is not None:
        headers["X-Dockyard-Signature"] = sign_payload(secret, timestamp, body)
    return headers


# -- backoff -------------------------------------------------------------------------------------


def backoff_delay(
    failures: int,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    jitter: float = JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``failures``-th failed attempt: ``min(cap, base *
    2**(failures - 1))`` less up to ``jitter`` of it (so never more than the cap)."""
    n = max(1, int(failures))
    delay = min(cap_s, base_s * 2.0 ** min(n - 1, 60))
    return delay * (1.0 - jitter * rand())


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: ignored, the backoff applies
    return seconds if math.isfinite(seconds) and seconds > 0 else None


# -- enqueueing ----------------------------------------------------------------------------------


def enqueue_for_event(
    unit: Unit,
    event_id: int | None,
    endpoint: str,
    kind: str,
    payload: Mapping[str, Any],
    targets: Iterable[WebhookTarget | Mapping[str, Any] | str],
    *,
    now: int | None = None,
) -> list[AlertDelivery]:
    """One ``pending`` delivery per target whose ``events`` match ``kind``, written through
    ``unit`` (inside the caller's transaction, so the event and its deliveries commit
    together). The body sent is ``{"delivery_id", "event_id", "kind", "endpoint", "time",
    "data": payload}``. No DNS here: targets were checked when declared, and are checked
    again at each attempt."""
    check_endpoint_name(endpoint)
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidInput(
            f"an alert event kind is 1 to 64 letters, digits or . _ : -, got {kind!r}"
        )
    parsed = [parse_target(t) for t in targets]
    when = int(time.time() * 1000) if now is None else int(now)
    data = json_nulls(payload)
    out = []
    for target in parsed:
        if not target.matches(kind):
            continue
        delivery_id = str(uuid.uuid4())
        body = {
            "delivery_id": delivery_id,
            "event_id": event_id,
            "kind": kind,
            "endpoint": endpoint,
            "time": when,
            "data": data,
        }
        out.append(
            unit.enqueue_delivery(
                delivery_id=delivery_id,
                event_id=event_id,
                endpoint=endpoint,
                target=target.url,
                options=target.options(kind),
                payload=body,
                now=when,
            )
        )
    return out


# -- delivery ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryStats:
    """What one delivery pass did: attempts made, and how they ended."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "dead": self.dead,
        }


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None


def _short(text: str, limit: int, secret: bytes | None = None) -> str:
    text = " ".join(str(text).split())
    if secret:
        try:
            raw = secret.decode("utf-8")
        except UnicodeDecodeError:
            raw = ""
        if raw:
            text = text.replace(raw, "***")
    text = scrub(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AlertDispatcher:
    """Sends due deliveries, one attempt each per pass, and records the outcome.

    ``env``: where signing keys are read (by the name each target gives); ``clock``: an
    object with ``time()`` (seconds), the ``time`` module by default (tests pass a fake);
    ``rand``: the jitter source; ``resolver``: ``(host, port) -> addresses`` (default
    ``socket.getaddrinfo``).
    """

    def __init__(
        self,
        store: Store,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        jitter: float = JITTER,
        rand: Callable[[], float] | None = None,
        resolver: Resolver | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidInput(f"max_attempts must be a positive integer, got {max_attempts!r}")
        if not 0 <= jitter < 1:
            raise InvalidInput(f"jitter must be in [0, 1), got {jitter!r}")
        self.store = store
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.clock: Clock = time if clock is None else clock
        self.max_attempts = max_attempts
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_cap_s = float(backoff_cap_s)
        self.jitter = float(jitter)
        self.rand = rand or random.random
        self.resolver = resolver
        self.lease_ms = int(lease_s * 1000)

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def deliver_due(
        self, now: int | None = None, limit: int = 100, *, endpoint: str | None = None
    ) -> DeliveryStats:
        """Attempt each delivery due at ``now`` (epoch ms; default: the clock) once, at most
        ``limit`` of them, oldest first; optionally only those of ``endpoint``. Each one is
        claimed in its own short transaction, sent outside it, and its outcome recorded."""
        cutoff = self._now_ms() if now is None else int(now)
        attempted = delivered = retrying = dead = 0
        for _ in range(max(0, int(limit))):
            claimed = self.store.write(
                lambda u: u.claim_due_deliveries(cutoff, 1, self.lease_ms, endpoint=endpoint)
            )
            if not claimed:
                break
            d = claimed[0]
            attempted += 1
            status = self._attempt_and_record(d)
            if status == "delivered":
                delivered += 1
            elif status == "dead":
                dead += 1
            elif status == "pending":
                retrying += 1
        return DeliveryStats(attempted, delivered, retrying, dead)

    def _attempt_and_record(self, d: AlertDelivery) -> str:
        secret: bytes | None = None
        try:
            outcome, secret = self._attempt(d)
        except Exception as exc:  # a bug must not leave the delivery unrecorded
            log.exception("alert delivery %s: unexpected error", d.id)
            outcome = _Outcome(False, f"internal error: {type(exc).__name__}")
        now = self._now_ms()
        if outcome.ok:
            self.store.write(lambda u: u.mark_delivered(d.id, now))
            log.info(
                "alert delivery %s (%s, endpoint %s) delivered to %s after %d attempt(s)",
                d.id,
                d.kind,
                d.endpoint,
                d.host,
                d.attempts,
            )
            return "delivered"
        allowed = (
            min(self.max_attempts, PERMANENT_MAX_ATTEMPTS)
            if outcome.permanent
            else (self.max_attempts)
        )
        error = _short(outcome.error, ERROR_CHARS, secret)
        next_attempt: int | None = None
        if d.attempts < allowed:
            delay = backoff_delay(
                d.attempts,
                base_s=self.backoff_base_s,
                cap_s=self.backoff_cap_s,
                jitter=self.jitter,
                rand=self.rand,
            )
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, self.backoff_cap_s))
            next_attempt = now + max(1, int(delay * 1000))
        recorded = self.store.write(
            lambda u: u.mark_failed(
                d.id, attempts=d.attempts, next_attempt=next_attempt, last_error=error
            )
        )
        if next_attempt is None:
            log.warning(
                "alert delivery %s (%s, endpoint %s) to %s is dead after %d attempt(s): %s "
                "(replay it with `dockyard alerts replay %s`)",
                d.id,
                d.kind,
                d.endpoint,
                d.host,
                d.attempts,
                error,
                d.id,
            )
        else:
            log.warning(
                "alert delivery %s (%s, endpoint %s) to %s failed (attempt %d of %d), retry in "
                "%.1f s: %s",
                d.id,
                d.kind,
                d.endpoint,
                d.host,
                d.attempts,
                allowed,
                (next_attempt - now) / 1000,
                error,
            )
        if not recorded:
            return "superseded"
        return "dead" if next_attempt is None else "pending"

    def _attempt(self, d: AlertDelivery) -> tuple[_Outcome, bytes | None]:
        try:
            target = WebhookTarget.from_delivery(d)
        except InvalidInput as exc:
            return _Outcome(False, f"stored target is invalid: {exc.message}", True), None
        secret: bytes | None = None
        if target.sign:
            raw = self.env.get(target.secret_env)
            if not raw:
                return (
                    _Outcome(
                        False,
                        f"not sent: the signing key variable {target.secret_env} is not set "
                        "where alerts are sent (set it, or declare the target with sign: "
                        "false to send unsigned)",
                        True,
                    ),
                    None,
                )
            secret = raw.encode("utf-8")
        problems, addresses = _resolve_checked(target.url, target.allow_private, self.resolver)
        if problems:
            return _Outcome(False, "target refused: " + "; ".join(problems), True), secret
        body = canonical_json(d.payload)
        timestamp = int(self.clock.time())
        headers = signature_headers(d.id, d.kind, timestamp, body, secret)
        return self._send(target, addresses, body, headers), secret

    def _send(
        self, target: WebhookTarget, addresses: Sequence[str], body: bytes, headers: dict[str, str]
    ) -> _Outcome:
        """POST ``body`` to the first of ``addresses`` that accepts a connection (all of them
        were checked), with the host name in ``Host`` and in TLS SNI/verification."""
        import httpx

        url = httpx.URL(target.url)
        headers = {**headers, "Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        error = "no address to connect to"
        verify: Any = True  # httpx's default bundle (certifi)
        ca_file = self.env.get("SSL_CERT_FILE") if url.scheme == "https" else None
        if ca_file:
            import ssl

            try:
                verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                return _Outcome(
                    False, f"the CA bundle in SSL_CERT_FILE cannot be loaded ({exc})", True
                )
        with httpx.Client(
            timeout=target.timeout_s, follow_redirects=False, trust_env=False, verify=verify
        ) as client:
            for address in addresses:
                request = client.build_request(
                    "POST",
                    url.copy_with(host=address.split("%", 1)[0]),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                )
                try:
                    response = client.send(request, stream=True)
                except httpx.ConnectError as exc:  # nothing was sent: try the next address
                    error = f"cannot connect to {target.host} ({address}): {exc}"
                    continue
                except httpx.TimeoutException:
                    return _Outcome(False, f"timed out after {target.timeout_s:g} s")
                except httpx.HTTPError as exc:
                    return _Outcome(False, f"{type(exc).__name__}: {exc}")
                try:
                    return self._judge(response)
                finally:
                    response.close()
        return _Outcome(False, error)

    @staticmethod
    def _judge(response: Any) -> _Outcome:
        import httpx

        status = response.status_code
        if 200 <= status < 300:
            return _Outcome(True)
        try:
            chunk = b""
            for part in response.iter_raw(1024):
                chunk += part
                if len(chunk) >= 1024:
                    break
            excerpt = _short(chunk.decode("utf-8", "replace"), BODY_CHARS)
        except httpx.HTTPError:
            excerpt = ""
        detail = f": {excerpt}" if excerpt else ""
        if 300 <= status < 400:
            return _Outcome(
                False,
                f"HTTP {status}: redirects are not followed (point the target at the final URL)",
                True,
            )
        retry_after = (
            _retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
        )
        permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
        return _Outcome(False, f"HTTP {status}{detail}", permanent, retry_after)


# -- the service ---------------------------------------------------------------------------------

ALERT_PERMISSIONS: Mapping[str, str] = {
    "list_deliveries": ENDPOINT_READ,
    "get_delivery": ENDPOINT_READ,
    "replay": ENDPOINT_DEPLOY,
    "replay_dead": ENDPOINT_DEPLOY,
    "deliver_now": ENDPOINT_DEPLOY,
}


@enforced(ALERT_PERMISSIONS)
class AlertService:
    """Alert deliveries on behalf of ``actor``: reading needs ``endpoint:read`` on the
    delivery's endpoint, replaying and delivering now ``endpoint:deploy``. ``env``,
    ``clock`` and ``resolver`` are passed to the :class:`AlertDispatcher` of
    :meth:`deliver_now`."""

    def __init__(
        self,
        store: Store,
        actor: Actor,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        resolver: Resolver | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)
        self._env = env
        self._clock: Clock = time if clock is None else clock
        self._resolver = resolver
        self._max_attempts = max_attempts

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def list_deliveries(
        self, *, status: str | None = None, endpoint: str | None = None, limit: int = 100
    ) -> list[AlertDelivery]:
        """Deliveries, newest first; without ``endpoint``, those of the endpoints the actor
        may read (among the newest ``limit``)."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidInput(
                f"delivery status must be one of {', '.join(DELIVERY_STATUSES)}, got {status!r}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 1 to {MAX_LIST}, got {limit!r}")
        if endpoint is not None:
            check_endpoint_name(endpoint)
            self.authz.require(ENDPOINT_READ, endpoint)
        rows = self.store.read(
            lambda u: u.list_deliveries(status=status, endpoint=endpoint, limit=limit)
        )
        return [d for d in rows if self.authz.allows(ENDPOINT_READ, d.endpoint)]

    def _get(self, delivery_id: str) -> AlertDelivery:
        if not isinstance(delivery_id, str) or not 1 <= len(delivery_id) <= 36:
            raise InvalidInput(f"a delivery id is 1 to 36 characters, got {delivery_id!r}")
        d = self.store.read(lambda u: u.get_delivery(delivery_id))
        if d is None:
            raise NotFound(f"alert delivery {delivery_id!r} does not exist", id=delivery_id)
        return d  # type: ignore[no-any-return]

    def get_delivery(self, delivery_id: str) -> AlertDelivery:
        d = self._get(delivery_id)
        self.authz.require(ENDPOINT_READ, d.endpoint)
        return d

    def replay(self, delivery_id: str) -> AlertDelivery:
        """A dead delivery back to pending (fresh attempts, due now); audited
        ``alerts.replay``. Conflict if it is not dead."""
        d = self._get(delivery_id)
        self.authz.require(ENDPOINT_DEPLOY, d.endpoint)
        now = self._now_ms()

        def fn(u: Unit) -> AlertDelivery:
            out = u.replay_delivery(delivery_id, now)
            if out is None:
                current = u.get_delivery(delivery_id)
                status = "gone" if current is None else current.status
                raise Conflict(
                    f"alert delivery {delivery_id!r} is {status}, not dead: only dead "
                    "deliveries are replayed",
                    id=delivery_id,
                    status=status,
                )
            self._audit(u, out)
            return out

        return self.store.write(fn)  # type: ignore[no-any-return]

    def replay_dead(self, endpoint: str, *, limit: int = MAX_LIST) -> list[AlertDelivery]:
        """Every dead delivery of ``endpoint`` (up to ``limit``) back to pending; one
        ``alerts.replay`` audit event each."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 1 to {MAX_LIST}, got {limit!r}")
        now = self._now_ms()

        def fn(u: Unit) -> list[AlertDelivery]:
            out = []
            for d in u.list_deliveries(status="dead", endpoint=endpoint, limit=limit):
                replayed = u.replay_delivery(d.id, now)
                if replayed is not None:
                    self._audit(u, replayed)
                    out.append(replayed)
            return out

        return self.store.write(fn)  # type: ignore[no-any-return]

    def _audit(self, u: Unit, d: AlertDelivery) -> None:
        record_event(
            u,
            self.actor,
            "alerts.replay",
            "endpoint",
            d.endpoint,
            delivery_id=d.id,
            endpoint=d.endpoint,
            target_host=d.host,
            kind=d.kind,
        )

    def deliver_now(self, *, endpoint: str | None = None, limit: int = 100) -> DeliveryStats:
        """One delivery pass now: of ``endpoint``'s due deliveries, or (needing
        ``endpoint:deploy`` on every endpoint) of all."""
        if endpoint is not None:
            check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 1 to {MAX_LIST}, got {limit!r}")
        dispatcher = AlertDispatcher(
            self.store,
            env=self._env,
            clock=self._clock,
            resolver=self._resolver,
            max_attempts=self._max_attempts,
        )
        return dispatcher.deliver_due(limit=limit, endpoint=endpoint)
