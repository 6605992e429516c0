"""The webhook signature scheme of the contract, both ways."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from self_healing_sdk.signing import ReplayGuard, SignatureError, sign, signature, verify

SECRET = "s3cret-value"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"action":"restart"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1700000000", body) == "sha256=" + expected
    headers = sign(SECRET, "svc", body, timestamp=1700000000)
    assert headers == {
        "X-SelfHeal-Timestamp": "1700000000",
        "X-SelfHeal-Service": "svc",
        "X-SelfHeal-Signature": "sha256=" + expected,
    }


def test_valid_request_verifies_case_insensitively() -> None:
    headers = {k.lower(): v for k, v in sign(SECRET, "svc", b"{}").items()}
    verify(SECRET, headers, b"{}", service_id="svc")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "signature mismatch"),
        (lambda h, b: (h | {"X-SelfHeal-Service": "other"}, b), "wrong service id"),
        (lambda h, b: ({k: v for k, v in h.items() if "Signature" not in k}, b), "missing"),
        (lambda h, b: (h | {"X-SelfHeal-Timestamp": "soon"}, b), "not an integer"),
    ],
)
def test_tampering_is_rejected(mutate, reason) -> None:
    headers, body = mutate(sign(SECRET, "svc", b"{}"), b"{}")
    with pytest.raises(SignatureError, match=reason):
        verify(SECRET, headers, body, service_id="svc")


def test_wrong_secret_and_stale_timestamp() -> None:
    headers = sign(SECRET, "svc", b"{}")
    with pytest.raises(SignatureError, match="mismatch"):
        verify("another-secret", headers, b"{}", service_id="svc")
    old = sign(SECRET, "svc", b"{}", timestamp=1_000)
    with pytest.raises(SignatureError, match="window"):
        verify(SECRET, old, b"{}", service_id="svc")


def test_replay_is_rejected() -> None:
    guard = ReplayGuard()
    headers = sign(SECRET, "svc", b"{}")
    verify(SECRET, headers, b"{}", service_id="svc", replay_guard=guard)
    with pytest.raises(SignatureError, match="replayed"):
        verify(SECRET, headers, b"{}", service_id="svc", replay_guard=guard)


def test_replay_guard_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    for i in range(10):
        assert guard.check_and_remember(f"sig{i}", now=1000.0)
    assert len(guard._seen) == 3
