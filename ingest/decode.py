"""Turn received messages into validated readings or rejections with a specific reason.

Pure functions: no I/O, so they are tested without services and run off the event loop.
A rejection names the machine-readable reason (the first error's) and, in ``detail``, every
field, the offending value and why, e.g. ``fill_pct=140: Input should be less than or equal to
100``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ingest.mqtt import Message
from placewatch.kinds import PAYLOAD_MODELS, Kind, Reading
from placewatch.settings import Settings

log = logging.getLogger(__name__)

_KIND_BY_NAME = {k.value: k for k in Kind}
_DETAIL_MAX = 1_000
_VALUE_MAX = 60


class Reason:
    """Machine-readable rejection reasons (the ``reason`` column and metric label)."""

    INVALID_TOPIC = "invalid_topic"
    UNKNOWN_KIND = "unknown_kind"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    OUT_OF_RANGE = "out_of_range"
    INVALID_VALUE = "invalid_value"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    UNKNOWN_DEVICE = "unknown_device"
    KIND_MISMATCH = "kind_mismatch"
    STORAGE_ERROR = "storage_error"
    DECODE_ERROR = "decode_error"  # decoding itself failed unexpectedly: a placewatch bug


_REASON_BY_ERROR_TYPE = {
    "json_invalid": Reason.INVALID_JSON,
    "json_type": Reason.INVALID_JSON,
    "model_type": Reason.NOT_AN_OBJECT,
    "model_attributes_type": Reason.NOT_AN_OBJECT,
    "missing": Reason.MISSING_FIELD,
    "missing_measurement": Reason.MISSING_FIELD,
    "extra_forbidden": Reason.UNKNOWN_FIELD,
    "greater_than": Reason.OUT_OF_RANGE,
    "greater_than_equal": Reason.OUT_OF_RANGE,
    "less_than": Reason.OUT_OF_RANGE,
    "less_than_equal": Reason.OUT_OF_RANGE,
    "finite_number": Reason.OUT_OF_RANGE,
}


@dataclass(frozen=True)
class DecodeOptions:
    prefix: str
    # Event times accepted: up to max_future_s after receipt (clock faults beyond), and no more
    # than max_age_s before it (an unset device clock reports 1970), None = no limit.
    max_future_s: float = 300
    max_age_s: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeOptions:
        days = settings.ingest_max_age_days
        return cls(
            prefix=settings.topic_prefix,
            max_future_s=settings.ingest_max_future_s,
            max_age_s=days * 86_400 if days else None,
        )


@dataclass(slots=True, frozen=True)
class Address:
    council_id: str
    kind: Kind
    device_id: str


@dataclass(slots=True, frozen=True)
class Decoded:
    message: Message
    address: Address
    reading: Reading


@dataclass(slots=True, frozen=True)
class Rejected:
    message: Message
    council_id: str | None
    reason: str
    detail: str


def parse_topic(topic: str, prefix: str) -> Address | str:
    """``{prefix}/{council}/{kind}/{device}`` → Address, or an error text."""
    parts = topic.split("/")
    want = len(prefix.split("/")) + 3
    if len(parts) != want or "/".join(parts[:-3]) != prefix or not all(parts[-3:]):
        return f"topic {topic!r} is not {prefix}/<council>/<kind>/<device>"
    council, kind_name, device = parts[-3:]
    kind = _KIND_BY_NAME.get(kind_name)
    if kind is None:
        return f"kind {kind_name!r} is not one of {', '.join(_KIND_BY_NAME)}"
    return Address(council, kind, device)


def decode(message: Message, options: DecodeOptions) -> Decoded | Rejected:
    prefix = options.prefix
    address = parse_topic(message.topic, prefix)
    if isinstance(address, str):
        council = _council_guess(message.topic, prefix)
        reason = Reason.UNKNOWN_KIND if address.startswith("kind ") else Reason.INVALID_TOPIC
        return Rejected(message, council, reason, address)
    model = PAYLOAD_MODELS[address.kind]
    try:
        reading = model.model_validate_json(message.payload)
    except ValidationError as exc:
        reason, detail = describe(exc)
        return Rejected(message, address.council_id, reason, detail)
    lag = message.received_at - reading.time.timestamp()
    if -lag > options.max_future_s or (options.max_age_s is not None and lag > options.max_age_s):
        received = datetime.fromtimestamp(message.received_at, UTC).isoformat()
        future = lag < 0
        limit = (
            f"{options.max_future_s:g} s after"
            if future
            else f"{(options.max_age_s or 0) / 86_400:g} days before"
        )
        return Rejected(
            message,
            address.council_id,
            Reason.FUTURE_TIMESTAMP if future else Reason.TOO_OLD,
            f"time={reading.time.isoformat()}: more than {limit} it was received ({received})",
        )
    return Decoded(message, address, reading)


def decode_all(
    batch: Sequence[Message], options: DecodeOptions
) -> tuple[list[Decoded], list[Rejected]]:
    decoded: list[Decoded] = []
    rejected: list[Rejected] = []
    for msg in batch:
        try:
            out = decode(msg, options)
        except Exception as exc:  # one message must never stop the consumer
            log.exception("decoding a message on %s failed", msg.topic)
            out = Rejected(msg, None, Reason.DECODE_ERROR, f"{type(exc).__name__}: {exc}"[:500])
        if isinstance(out, Decoded):
            decoded.append(out)
        else:
            rejected.append(out)
    return decoded, rejected


def describe(exc: ValidationError) -> tuple[str, str]:
    """The first error's reason, and every error as ``field=value: why``."""
    errors = exc.errors(include_url=False)
    reason = _REASON_BY_ERROR_TYPE.get(errors[0]["type"], Reason.INVALID_VALUE)
    parts = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] in ("json_invalid", "json_type"):
            parts.append(err["msg"])
        elif err["type"] == "missing" or not field:
            parts.append(f"{field or 'payload'}: {err['msg']}")
        else:
            parts.append(f"{field}={_short(err.get('input'))}: {err['msg']}")
    detail = "; ".join(parts)
    return reason, detail[:_DETAIL_MAX]


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "…"


def _council_guess(topic: str, prefix: str) -> str | None:
    if not topic.startswith(prefix + "/"):
        return None
    council = topic[len(prefix) + 1 :].split("/", 1)[0]
    return council or None
