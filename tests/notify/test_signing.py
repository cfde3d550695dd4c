"""Standard Webhooks signatures, checked against the scheme's reference library: what we sign
verifies there, and anything changed after signing (body, id, timestamp, secret) or a stale
timestamp does not."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notify.signing import new_secret, secret_key, signature_headers

BODY = json.dumps({"type": "alert.opened", "data": {"alert_id": 17, "summary": "fill 91 %"}})


def _secret_of(n_bytes: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n_bytes))).decode()


def _now() -> int:
    return int(time.time())


# --------------------------------------------------------------------------------------------
# Secrets


def test_new_secret_is_whsec_base64_of_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert secret_key(secret) == base64.b64decode(secret.removeprefix("whsec_"))
    assert len(secret_key(secret)) == 32
    assert new_secret() != secret


@pytest.mark.parametrize("n_bytes", [24, 32, 64])
def test_secret_key_accepts_24_to_64_bytes(n_bytes: int) -> None:
    assert secret_key(_secret_of(n_bytes)) == bytes(range(n_bytes))


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "starts with 'whsec_'"),
        (base64.b64encode(bytes(32)).decode(), "starts with 'whsec_'"),
        ("WHSEC_" + base64.b64encode(bytes(32)).decode(), "starts with 'whsec_'"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_", "24 to 64 bytes, not 0"),
        (_secret_of(23), "24 to 64 bytes, not 23"),
        (_secret_of(65), "24 to 64 bytes, not 65"),
    ],
    ids=[
        "empty",
        "no-prefix",
        "upper-case-prefix",
        "not-base64",
        "no-key",
        "too-short",
        "too-long",
    ],
)
def test_secret_key_explains_a_malformed_secret(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        secret_key(secret)


def test_signing_with_a_malformed_secret_fails() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        signature_headers("hunter2", "msg_1", _now(), BODY)


# --------------------------------------------------------------------------------------------
# Signatures


def test_headers_name_id_timestamp_and_a_v1_signature() -> None:
    headers = signature_headers(new_secret(), "msg_1", 1_700_000_000, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1700000000"
    version, signature = headers["webhook-signature"].split(",")
    assert version == "v1"
    assert len(base64.b64decode(signature, validate=True)) == 32  # HMAC-SHA256


def test_signature_equals_the_reference_librarys() -> None:
    secret, ts = new_secret(), 1_700_000_000
    ours = signature_headers(secret, "msg_1", ts, BODY)["webhook-signature"]
    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(ts, UTC), BODY)
    assert ours == theirs


@pytest.mark.parametrize(
    "body",
    [BODY, json.dumps({"summary": "Café door open ✓ 3 °C"}, ensure_ascii=False), "{}"],
    ids=["ascii", "non-ascii", "empty-object"],
)
def test_reference_library_verifies_our_signature(body: str) -> None:
    secret = new_secret()
    headers = signature_headers(secret, "msg_2fQm", _now(), body)
    assert Webhook(secret).verify(body.encode(), headers) == json.loads(body)


def _tampered(case: str, secret: str) -> tuple[str, str, dict[str, str]]:
    """(secret to verify with, body received, headers received) for one way of getting it wrong."""
    now = _now()
    headers = signature_headers(secret, "msg_1", now, BODY)
    if case == "body":
        return secret, BODY.replace("17", "18"), headers
    if case == "id":
        return secret, BODY, {**headers, "webhook-id": "msg_2"}
    if case == "timestamp":
        return secret, BODY, {**headers, "webhook-timestamp": str(now - 1)}
    if case == "other-secret":
        return new_secret(), BODY, headers
    if case == "stale":
        return secret, BODY, signature_headers(secret, "msg_1", now - 301, BODY)
    if case == "future":
        return secret, BODY, signature_headers(secret, "msg_1", now + 301, BODY)
    if case == "no-signature":
        return secret, BODY, {k: v for k, v in headers.items() if k != "webhook-signature"}
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["body", "id", "timestamp", "other-secret", "stale", "future", "no-signature"],
)
def test_reference_library_rejects(case: str) -> None:
    secret = new_secret()
    verify_with, body, headers = _tampered(case, secret)
    with pytest.raises(WebhookVerificationError):
        Webhook(verify_with).verify(body, headers)


def test_timestamp_just_inside_five_minutes_still_verifies() -> None:
    # The "stale" case above is meaningful only if a slightly younger one passes.
    secret = new_secret()
    headers = signature_headers(secret, "msg_1", _now() - 280, BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
