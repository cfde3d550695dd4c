"""Acknowledge links: signed with the link secret, expiring after link_ttl_s; anything altered,
signed with another key or for another purpose is invalid, and a missing secret is an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from pydantic import SecretStr, ValidationError

from notify.links import (
    _SALT,
    AckLink,
    LinkProblem,
    LinkSecretMissing,
    ack_url,
    make_token,
    read_token,
)
from placewatch.settings import Settings

TTL_S = 3600
LINK = AckLink(alert_id=4217, team_id="north-carers", link_id="dlv-991")


def _settings(
    secret: str | None = "link-secret-for-tests-0123456789",
    public_url: str = "https://placewatch.example.org",
) -> Settings:
    return Settings(
        link_secret=SecretStr(secret) if secret is not None else None,
        link_ttl_s=TTL_S,
        public_url=public_url,
    )


SETTINGS = _settings()


def _flip_first(part: str) -> str:
    return ("A" if part[0] != "A" else "B") + part[1:]


@contextmanager
def _signed_seconds_ago(age_s: int) -> Iterator[None]:
    """Tokens made inside carry a timestamp ``age_s`` in the past (the clock is only moved for
    itsdangerous's signer, and only while making them)."""
    signed_at = int(time.time()) - age_s
    with pytest.MonkeyPatch.context() as m:
        m.setattr(TimestampSigner, "get_timestamp", lambda self: signed_at)
        yield


# --------------------------------------------------------------------------------------------
# Good links


def test_token_round_trips() -> None:
    assert read_token(SETTINGS, make_token(SETTINGS, LINK)) == LINK


def test_token_is_url_safe_and_does_not_repeat_the_secret() -> None:
    token = make_token(SETTINGS, LINK)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    assert "link-secret" not in token


@pytest.mark.parametrize("public_url", ["https://pw.example.org", "https://pw.example.org/"])
def test_ack_url_is_public_url_ack_token(public_url: str) -> None:
    settings = _settings(public_url=public_url)
    url = ack_url(settings, LINK)
    prefix = "https://pw.example.org/ack/"
    assert url.startswith(prefix)
    assert read_token(settings, url.removeprefix(prefix)) == LINK


def test_token_just_younger_than_the_ttl_is_accepted() -> None:
    with _signed_seconds_ago(TTL_S - 30):
        token = make_token(SETTINGS, LINK)
    assert read_token(SETTINGS, token) == LINK


# --------------------------------------------------------------------------------------------
# Bad links


def test_token_older_than_the_ttl_is_expired() -> None:
    with _signed_seconds_ago(TTL_S + 30):
        token = make_token(SETTINGS, LINK)
    assert read_token(SETTINGS, token) == LinkProblem("expired")


def test_expired_token_that_was_tampered_with_is_invalid() -> None:
    with _signed_seconds_ago(TTL_S + 30):
        token = make_token(SETTINGS, LINK)
    assert read_token(SETTINGS, _flip_first(token)) == LinkProblem("invalid")


def _tamper(token: str, how: str) -> str:
    payload, timestamp, signature = token.split(".")
    other = make_token(SETTINGS, AckLink(1, "north-carers", "dlv-1")).split(".")[0]
    return {
        "first-char": _flip_first(token),
        "other-payload": f"{other}.{timestamp}.{signature}",
        "other-timestamp": f"{payload}.{_flip_first(timestamp)}.{signature}",
        "truncated-signature": f"{payload}.{timestamp}.{signature[:-4]}",
        "no-signature": f"{payload}.{timestamp}",
        "empty": "",
        "garbage": "not-a-token",
    }[how]


@pytest.mark.parametrize(
    "how",
    [
        "first-char",
        "other-payload",
        "other-timestamp",
        "truncated-signature",
        "no-signature",
        "empty",
        "garbage",
    ],
)
def test_tampered_token_is_invalid(how: str) -> None:
    token = _tamper(make_token(SETTINGS, LINK), how)
    assert read_token(SETTINGS, token) == LinkProblem("invalid")


def test_token_signed_with_another_secret_is_invalid() -> None:
    token = make_token(_settings("a-different-link-secret-98765"), LINK)
    assert read_token(SETTINGS, token) == LinkProblem("invalid")


def test_token_signed_for_another_purpose_is_invalid() -> None:
    secret = SETTINGS.link_secret
    assert secret is not None
    other_salt = URLSafeTimedSerializer(secret.get_secret_value(), salt="something-else")
    token = other_salt.dumps([LINK.alert_id, LINK.team_id, LINK.link_id])
    assert read_token(SETTINGS, token) == LinkProblem("invalid")


@pytest.mark.parametrize(
    "payload",
    [["4217", "north-carers", "dlv-991"], [4217, 99, "dlv-991"], [4217, "north-carers"], "abc"],
    ids=["alert-id-not-int", "team-not-str", "two-items", "string"],
)
def test_genuinely_signed_token_of_the_wrong_shape_is_invalid(payload: object) -> None:
    secret = SETTINGS.link_secret
    assert secret is not None
    token = URLSafeTimedSerializer(secret.get_secret_value(), salt=_SALT).dumps(payload)
    assert read_token(SETTINGS, token) == LinkProblem("invalid")


# --------------------------------------------------------------------------------------------
# No secret


def test_missing_secret_is_an_error_everywhere() -> None:
    token = make_token(SETTINGS, LINK)
    unset = _settings(None)
    for use in (
        lambda: make_token(unset, LINK),
        lambda: ack_url(unset, LINK),
        lambda: read_token(unset, token),
    ):
        with pytest.raises(LinkSecretMissing, match="PLACEWATCH_LINK_SECRET"):
            use()


@pytest.mark.parametrize("value", ["", "   ", "short-secret"])
def test_an_empty_or_short_secret_is_refused_when_settings_are_read(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEWATCH_LINK_SECRET", value)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings()
    result = subprocess.run(
        [sys.executable, "-m", "placewatch", "notify"],
        env={**os.environ, "PLACEWATCH_LINK_SECRET": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "PLACEWATCH_LINK_SECRET must be at least 16 characters" in result.stderr
    assert "Traceback" not in result.stderr
