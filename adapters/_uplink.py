"""What every adapter produces, and the parsing helpers they share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.models import ModelHints
from placewatch.rejections import Refusal

_EUI = re.compile(r"^[0-9a-fA-F]{16}$")


class EnvelopeError(Refusal):
    """The message cannot give an uplink."""


@dataclass(frozen=True, slots=True)
class Uplink:
    network: str  # "ttn", "chirpstack" or "senml"
    # The network server application ("{app}@{tenant}" on TTN, the UUID on ChirpStack).
    application: str | None
    council_id: str | None  # known from the topic for SenML, else from the application
    dev_eui: str | None  # lower-case hex
    device_name: str | None  # the network server's device id, or the SenML base name
    time: datetime
    fields: dict[str, Any]
    hints: ModelHints
    # Identifies the uplink across redeliveries and network server retries.
    dedupe_key: str


def json_value(payload: bytes, what: str) -> Any:
    try:
        return json.loads(payload)
    # ValueError: also valid JSON Python will not read (an integer of more than 4300 digits);
    # RecursionError: nesting deeper than the interpreter's stack.
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError("invalid_json", f"{what}: not JSON ({str(exc)[:200]})") from None


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    body = json_value(payload, what)
    if not isinstance(body, dict):
        raise EnvelopeError("not_an_object", f"{what}: a JSON object is expected")
    return body


def obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def dev_eui(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _EUI.match(value) else None


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time with an offset (nanoseconds are cut to microseconds), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def earliest(values: list[Any]) -> datetime | None:
    times = [t for t in map(timestamp, values) if t is not None]
    return min(times) if times else None


def string_tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}
