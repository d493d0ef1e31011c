"""Alert webhooks without a store: signatures, target checks (SSRF), backoff, parsing."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from dockyard.core.alert_entities import AlertDelivery, safe_url
from dockyard.core.errors import InvalidInput
from dockyard.monitoring.alerts import (
    DEFAULT_SECRET_ENV,
    WebhookTarget,
    backoff_delay,
    canonical_json,
    check_target,
    declare_target,
    parse_target,
    sign_payload,
    signature_headers,
    verify_signature,
)

SECRET = "whsec-unit-test-0123456789"


# -- signing -------------------------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8_and_finite() -> None:
    body = canonical_json({"b": 1, "a": [1.5, float("nan")], "é": float("inf")})
    assert body == '{"a":[1.5,null],"b":1,"é":null}'.encode()


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    sig = sign_payload(SECRET, 1_700_000_000, body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sig == "sha256=" + expected
    headers = signature_headers("d-1", "drift", 1_700_000_000, body, SECRET)
    assert headers["X-Dockyard-Signature"] == sig
    assert headers["X-Dockyard-Event"] == "drift"
    assert headers["X-Dockyard-Delivery"] == "d-1"
    assert headers["X-Dockyard-Timestamp"] == "1700000000"
    assert "X-Dockyard-Signature" not in signature_headers("d", "k", 1, body, None)


def test_verify_signature() -> None:
    body = b'{"a":1}'
    ts = 1_700_000_000
    sig = sign_payload(SECRET, ts, body)
    assert verify_signature(SECRET, ts, body, sig, now=ts + 10)
    assert verify_signature(SECRET.encode(), str(ts), body, sig, now=ts - 10)
    assert not verify_signature("other-key", ts, body, sig, now=ts)
    assert not verify_signature(SECRET, ts, body + b" ", sig, now=ts)
    assert not verify_signature(SECRET, ts + 1, body, sig, now=ts)  # timestamp is signed
    assert not verify_signature(SECRET, ts, body, sig, now=ts + 301)  # too old: replay
    assert verify_signature(SECRET, ts, body, sig, tolerance_s=600, now=ts + 500)
    assert not verify_signature(SECRET, "soon", body, sig, now=ts)
    assert not verify_signature(SECRET, ts, body, "sha256=é", now=ts)  # non-ASCII: no crash
    assert not verify_signature(SECRET, ts, body, "", now=ts)


# -- targets -------------------------------------------------------------------------------------


def _resolver(mapping: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in mapping:
            raise OSError(-2, "Name or service not known")
        return mapping[host]

    return resolve


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.8.9.10:8080/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://169.254.10.1/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "not globally routable"),  # carrier-grade NAT
        ("http://240.0.0.1/", "reserved"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fc00::1]/hook", "private"),
        ("http://[::]/hook", "unspecified"),
        ("http://[ff02::1]/hook", "multicast"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback (embedded IPv4 127.0.0.1)"),
        ("http://[::ffff:169.254.169.254]/", "link-local (cloud metadata)"),
        ("http://[::ffff:10.0.0.1]/", "private (embedded IPv4 10.0.0.1)"),
        ("http://[2002:7f00:1::]/", "loopback (embedded IPv4 127.0.0.1)"),  # 6to4
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one integer
    ],
)
def test_non_public_addresses_are_refused(url: str, word: str) -> None:
    problems = check_target(url)
    assert len(problems) == 1 and f"is a {word}" in problems[0], problems
    assert "allow_private" in problems[0]
    assert check_target(url, allow_private=True) == []


def test_public_addresses_pass() -> None:
    assert check_target("https://93.184.216.34/hook") == []
    assert check_target("https://[2606:4700:4700::1111]/hook") == []


def test_every_resolved_address_must_be_public() -> None:
    resolve = _resolver(
        {"hooks.example.com": ["93.184.216.34"], "mixed.example.com": ["93.184.216.34", "10.0.0.7"]}
    )
    assert check_target("https://hooks.example.com/x", resolver=resolve) == []
    problems = check_target("https://mixed.example.com/x", resolver=resolve)
    assert problems and "'mixed.example.com' resolves to 10.0.0.7" in problems[0]
    problems = check_target("https://nowhere.example.com/x", resolver=resolve)
    assert problems == [
        "webhook host 'nowhere.example.com' does not resolve (Name or service not known)"
    ]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://127.0.0.1:6379/_x", "http or https"),
        ("http://user:pass@example.com/x", "user info"),
        ("http://token@example.com/x", "user info"),
        ("http:///x", "names no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "malformed"),
        ("", "non-empty"),
    ],
)
def test_bad_urls_are_refused_before_any_lookup(url: str, fragment: str) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("resolved a bad URL")

    problems = check_target(url, allow_private=True, resolver=no_dns)
    assert any(fragment in p for p in problems), problems
    with pytest.raises(InvalidInput):
        parse_target(url)


def test_userinfo_never_echoed_in_errors() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_target("ftp://alice:hunter2@example.com/x")
    assert "hunter2" not in str(info.value) and "hunter2" not in str(info.value.details)


def test_parse_target_forms_and_errors() -> None:
    t = parse_target("https://hooks.example.com/alert?token=abc")
    assert t == WebhookTarget("https://hooks.example.com/alert?token=abc")
    assert t.secret_env == DEFAULT_SECRET_ENV and t.sign and t.events == ("*",)
    assert t.safe_url == "https://hooks.example.com/alert?***"
    assert "abc" not in repr(t)
    t = parse_target(
        {
            "url": "http://10.0.0.5:9000/x",
            "allow_private": True,
            "secret_env": "OPS_HOOK_KEY",
            "events": ["drift", "quality.*"],
            "timeout_s": 2,
        }
    )
    assert t.allow_private and t.timeout_s == 2.0 and t.events == ("drift", "quality.*")
    assert t.matches("drift") and t.matches("quality.nulls") and not t.matches("performance")
    assert parse_target(t.to_dict()) == t
    assert parse_target(t) is t
    with pytest.raises(InvalidInput, match="never holds its signing key"):
        parse_target({"url": "https://x.example.com", "secret": "s3cret"})
    with pytest.raises(InvalidInput, match="unknown webhook target field"):
        parse_target({"url": "https://x.example.com", "retries": 3})
    with pytest.raises(InvalidInput, match="needs a 'url'"):
        parse_target({"events": ["*"]})
    with pytest.raises(InvalidInput, match="timeout_s"):
        parse_target({"url": "https://x.example.com", "timeout_s": 0})
    with pytest.raises(InvalidInput, match="timeout_s"):
        parse_target({"url": "https://x.example.com", "timeout_s": 61})
    with pytest.raises(InvalidInput, match="secret_env"):
        parse_target({"url": "https://x.example.com", "secret_env": "NOT A NAME"})
    with pytest.raises(InvalidInput, match="events"):
        parse_target({"url": "https://x.example.com", "events": []})
    with pytest.raises(InvalidInput, match="allow_private"):
        parse_target({"url": "https://x.example.com", "allow_private": "yes"})
    with pytest.raises(InvalidInput):
        parse_target(42)  # type: ignore[arg-type]


def test_declare_target_checks_addresses() -> None:
    resolve = _resolver({"internal.example.com": ["10.0.0.9"], "ok.example.com": ["8.8.8.8"]})
    assert declare_target("https://ok.example.com/x", resolver=resolve).host == "ok.example.com"
    with pytest.raises(InvalidInput, match="private address"):
        declare_target("https://internal.example.com/x", resolver=resolve)
    allowed = declare_target(
        {"url": "https://internal.example.com/x", "allow_private": True}, resolver=resolve
    )
    assert allowed.allow_private


def test_safe_url_and_delivery_views() -> None:
    assert (
        safe_url("https://u:p@h.example.com:8443/p?token=t#f") == "https://h.example.com:8443/p?***"
    )
    assert safe_url("http://[::1]:80/x") == "http://[::1]:80/x"
    d = AlertDelivery(
        id="d",
        event_id=1,
        endpoint="fraud",
        target="https://h.example.com/p?token=t",
        options={"event": "drift"},
        payload={},
        status="pending",
        attempts=0,
        last_error=None,
        created=0,
        next_attempt=0,
        delivered=None,
    )
    assert d.kind == "drift" and d.host == "h.example.com"
    assert d.to_dict()["target"] == "https://h.example.com/p?***"
    assert "token" not in repr(d)


# -- backoff -------------------------------------------------------------------------------------


def test_backoff_doubles_from_two_seconds_up_to_an_hour() -> None:
    schedule = [backoff_delay(n, rand=lambda: 0.0) for n in range(1, 15)]
    assert schedule[:8] == [2, 4, 8, 16, 32, 64, 128, 256]
    assert schedule[10] == 2048 and schedule[11] == 3600 and schedule[-1] == 3600
    assert backoff_delay(10_000, rand=lambda: 0.0) == 3600  # no overflow


def test_backoff_jitter_only_shortens_by_at_most_a_fifth() -> None:
    assert backoff_delay(3, rand=lambda: 1.0) == pytest.approx(8 * 0.8)
    assert backoff_delay(20, rand=lambda: 0.5) == pytest.approx(3600 * 0.9)
    assert backoff_delay(1, jitter=0.0, rand=lambda: 0.9) == 2
