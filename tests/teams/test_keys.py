"""API keys: ``pw_<key id>_<secret>``; only a hash of the secret is kept, and a key opens the
API only with its own secret, unrevoked and unexpired."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teams.keys import SCOPES, Principal, check_key, new_key, parse_key

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
KEY_ID = "abc123def456"
SECRET = "S" * 21 + "_" + "-" * 21  # 43 URL-safe characters


def _row(secret: str = SECRET, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key_id": KEY_ID,
        "team_id": "north-carers",
        "council_id": "camden",
        "secret_hash": hashlib.sha256(secret.encode()).digest(),
        "scopes": ["alerts:read", "alerts:write"],
        "revoked_at": None,
        "expires_at": None,
    }
    row.update(changes)
    return row


# --------------------------------------------------------------------------------------------
# New keys and their format


def test_new_key_token_parses_back_to_its_id_and_a_secret_matching_the_hash() -> None:
    key = new_key()
    parsed = parse_key(key.token)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == key.key_id
    assert key.token == f"pw_{key.key_id}_{secret}"
    assert key.secret_hash == hashlib.sha256(secret.encode()).digest()


def test_new_keys_differ() -> None:
    keys = [new_key() for _ in range(20)]
    assert len({k.key_id for k in keys}) == 20
    assert len({k.token for k in keys}) == 20


def test_new_key_checks_against_a_row_made_from_it() -> None:
    key = new_key()
    parsed = parse_key(key.token)
    assert parsed is not None
    row = _row(key_id=key.key_id, secret_hash=key.secret_hash, scopes=list(SCOPES))
    principal = check_key(row, parsed[1], NOW)
    assert principal == Principal("north-carers", "camden", key.key_id, frozenset(SCOPES))


def test_parse_key() -> None:
    assert parse_key(f"pw_{KEY_ID}_{SECRET}") == (KEY_ID, SECRET)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "pw_",
        f"pw_{KEY_ID}",
        f"pw_{KEY_ID}_",
        f"pk_{KEY_ID}_{SECRET}",
        f"PW_{KEY_ID}_{SECRET}",
        f"pw_{KEY_ID.upper()}_{SECRET}",
        f"pw_{KEY_ID[:-1]}_{SECRET}",
        f"pw_{KEY_ID}x_{SECRET}",
        f"pw_{KEY_ID}_{SECRET[:-1]}",
        f"pw_{KEY_ID}_{SECRET}A",
        f"pw_{KEY_ID}_{SECRET[:-1]}+",
        f"pw_{KEY_ID}_{SECRET[:-1]}=",
        f" pw_{KEY_ID}_{SECRET}",
        f"Bearer pw_{KEY_ID}_{SECRET}",
    ],
    ids=[
        "empty",
        "prefix-only",
        "no-secret",
        "empty-secret",
        "wrong-prefix",
        "upper-prefix",
        "upper-key-id",
        "short-key-id",
        "long-key-id",
        "short-secret",
        "long-secret",
        "plus-in-secret",
        "padding-in-secret",
        "leading-space",
        "with-scheme",
    ],
)
def test_parse_key_rejects_malformed_tokens(token: str) -> None:
    assert parse_key(token) is None


# --------------------------------------------------------------------------------------------
# Checking a key


def test_live_key_with_its_secret_gives_the_teams_principal() -> None:
    assert check_key(_row(), SECRET, NOW) == Principal(
        team_id="north-carers",
        council_id="camden",
        key_id=KEY_ID,
        scopes=frozenset({"alerts:read", "alerts:write"}),
    )


def test_secret_hash_as_returned_by_the_database_driver_is_accepted() -> None:
    row = _row()
    row["secret_hash"] = memoryview(row["secret_hash"])
    assert check_key(row, SECRET, NOW) is not None


def test_key_expiring_later_is_live() -> None:
    assert check_key(_row(expires_at=NOW + timedelta(seconds=1)), SECRET, NOW) is not None


@pytest.mark.parametrize(
    ("row", "secret"),
    [
        (_row(), SECRET[:-1] + "x"),
        (_row(), ""),
        (_row(secret="another-secret"), SECRET),
        (_row(revoked_at=NOW - timedelta(days=1)), SECRET),
        (_row(revoked_at=NOW + timedelta(days=1)), SECRET),  # revoked is revoked
        (_row(expires_at=NOW - timedelta(seconds=1)), SECRET),
        (_row(expires_at=NOW), SECRET),  # expiry instant itself
        (None, SECRET),
    ],
    ids=[
        "wrong-secret",
        "empty-secret",
        "hash-of-another-secret",
        "revoked",
        "revocation-stamped-later",
        "expired",
        "expires-now",
        "unknown-key-id",
    ],
)
def test_key_is_refused(row: dict[str, Any] | None, secret: str) -> None:
    assert check_key(row, secret, NOW) is None


def test_revoked_key_is_refused_even_with_a_future_expiry() -> None:
    row = _row(revoked_at=NOW - timedelta(hours=1), expires_at=NOW + timedelta(days=30))
    assert check_key(row, SECRET, NOW) is None
