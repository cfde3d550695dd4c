"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the
endpoint secret, which is ``whsec_`` + base64 of the key bytes. Verified in the tests by the
scheme's own reference library (``standardwebhooks``), so the two implementations agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_PREFIX = "whsec_"


def new_secret() -> str:
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; raises ValueError with the reason if malformed."""
    if not secret.startswith(_PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len(_PREFIX) :], validate=True)
    except ValueError as exc:
        raise ValueError("a webhook secret's part after 'whsec_' is not valid base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret must hold 24 to 64 bytes, not {len(key)}")
    return key


def signature_headers(secret: str, webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
