"""API keys: ``pw_<key id>_<secret>``, one team each, with scopes.

Only SHA-256 of the secret is stored: the secret is 32 random bytes, so a slow password hash
would add nothing, and a fast one keeps every request cheap. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SCOPES = ("alerts:read", "alerts:write", "devices:read")
_KEY = re.compile(r"^pw_(?P<id>[a-z0-9]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    token: str  # shown once
    secret_hash: bytes


@dataclass(frozen=True)
class Principal:
    """Who is calling: a team, through one of its keys."""

    team_id: str
    council_id: str
    key_id: str
    scopes: frozenset[str]


def new_key() -> NewKey:
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, f"pw_{key_id}_{secret}", _hash(secret))


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(token: str) -> tuple[str, str] | None:
    m = _KEY.match(token)
    return (m["id"], m["secret"]) if m else None


def check_key(row: dict[str, Any] | None, secret: str, now: datetime) -> Principal | None:
    """The principal for a key row (api_keys joined to teams) if the secret matches and the key
    is live; None otherwise (the caller answers 401 without saying which)."""
    if row is None:
        # Same work as a real comparison, so that timing does not tell which key ids exist.
        hmac.compare_digest(_hash(secret), b"\0" * 32)
        return None
    if not hmac.compare_digest(_hash(secret), bytes(row["secret_hash"])):
        return None
    expired = row["expires_at"] is not None and row["expires_at"] <= now
    if row["revoked_at"] is not None or expired:
        return None
    return Principal(row["team_id"], row["council_id"], row["key_id"], frozenset(row["scopes"]))
