"""Signed, expiring acknowledge links carried by alert events.

A link names one alert, the team it was sent to and a link id (the delivery), signed with
``PLACEWATCH_LINK_SECRET`` by itsdangerous (HMAC-SHA256 with a timestamp). The API checks the
signature and age; ``ack_link_uses`` makes each link single-use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from placewatch.settings import Settings

_SALT = "placewatch.ack-link/1"


class LinkSecretMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "PLACEWATCH_LINK_SECRET is not set: acknowledge links cannot be signed or checked "
            "(set it to a long random string, the same for notify and the API)"
        )


@dataclass(frozen=True)
class AckLink:
    alert_id: int
    team_id: str
    link_id: str


@dataclass(frozen=True)
class LinkProblem:
    reason: Literal["expired", "invalid"]


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    if settings.link_secret is None:
        raise LinkSecretMissing()
    return URLSafeTimedSerializer(settings.link_secret.get_secret_value(), salt=_SALT)


def make_token(settings: Settings, link: AckLink) -> str:
    return _serializer(settings).dumps([link.alert_id, link.team_id, link.link_id])


def ack_url(settings: Settings, link: AckLink) -> str:
    return f"{settings.public_url.rstrip('/')}/ack/{make_token(settings, link)}"


def read_token(settings: Settings, token: str) -> AckLink | LinkProblem:
    try:
        alert_id, team_id, link_id = _serializer(settings).loads(token, max_age=settings.link_ttl_s)
    except SignatureExpired:
        return LinkProblem("expired")
    except (BadSignature, ValueError, TypeError):
        return LinkProblem("invalid")
    if not isinstance(alert_id, int) or not isinstance(team_id, str):
        return LinkProblem("invalid")
    return AckLink(alert_id, team_id, str(link_id))
