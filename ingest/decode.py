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

from pydantic import ValidationError

from adapters import EnvelopeError, Uplink, adapt
from ingest.mqtt import Message
from placewatch.kinds import PAYLOAD_MODELS, Kind, Reading
from placewatch.rejections import Reason, describe
from placewatch.settings import Settings

log = logging.getLogger(__name__)

_KIND_BY_NAME = {k.value: k for k in Kind}


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


@dataclass(slots=True)  # not frozen: frozen dataclasses cost more to build, one per message
class Decoded:
    message: Message
    address: Address
    reading: Reading
    lag: float  # seconds from the event time to receipt


@dataclass(slots=True, frozen=True)
class Pending:
    """A network server or SenML uplink: which device and model it is needs the registry."""

    message: Message
    uplink: Uplink


Accepted = Decoded | Pending


@dataclass(slots=True, frozen=True)
class Rejected:
    message: Message
    council_id: str | None
    reason: str
    detail: str


_TOPICS: dict[tuple[str, str], Address | str] = {}
_TOPICS_MAX = 100_000  # a device publishes on one topic: the cache holds the estate's topics


def parse_topic(topic: str, prefix: str) -> Address | str:
    """``{prefix}/{council}/{kind}/{device}`` → Address, or an error text (remembered)."""
    key = (topic, prefix)
    found = _TOPICS.get(key)
    if found is None:
        if len(_TOPICS) >= _TOPICS_MAX:
            _TOPICS.clear()
        found = _TOPICS[key] = _parse_topic(topic, prefix)
    return found


def _parse_topic(topic: str, prefix: str) -> Address | str:
    parts = topic.split("/")
    want = len(prefix.split("/")) + 3
    if len(parts) != want or "/".join(parts[:-3]) != prefix or not all(parts[-3:]):
        return f"topic {topic!r} is not {prefix}/<council>/<kind>/<device>"
    council, kind_name, device = parts[-3:]
    kind = _KIND_BY_NAME.get(kind_name)
    if kind is None:
        return f"kind {kind_name!r} is not one of {', '.join(_KIND_BY_NAME)}"
    return Address(council, kind, device)


def decode(message: Message, options: DecodeOptions) -> Decoded | Rejected | list[Pending]:
    prefix = options.prefix
    try:
        uplinks = adapt(message.topic, message.payload, prefix, message.received_at)
    except EnvelopeError as exc:
        return Rejected(message, _council_guess(message.topic, prefix), exc.reason, exc.detail)
    if uplinks is not None:
        for u in uplinks:
            late = _outside_window(message, u.time, event_lag(message, u.time), options)
            if late is not None:
                return Rejected(message, u.council_id, *late)
        return [Pending(message, u) for u in uplinks]
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
    lag = event_lag(message, reading.time)
    late = _outside_window(message, reading.time, lag, options)
    if late is not None:
        return Rejected(message, address.council_id, *late)
    return Decoded(message, address, reading, lag)


def event_lag(message: Message, time: datetime) -> float:
    return message.received_at - time.timestamp()


def _outside_window(
    message: Message, time: datetime, lag: float, options: DecodeOptions
) -> tuple[str, str] | None:
    """(reason, detail) if the event time is too far ahead of or behind its receipt."""
    future = lag < 0
    if not (
        -lag > options.max_future_s or (options.max_age_s is not None and lag > options.max_age_s)
    ):
        return None
    received = datetime.fromtimestamp(message.received_at, UTC).isoformat()
    limit = (
        f"{options.max_future_s:g} s after"
        if future
        else f"{(options.max_age_s or 0) / 86_400:g} days before"
    )
    return (
        Reason.FUTURE_TIMESTAMP if future else Reason.TOO_OLD,
        f"time={time.isoformat()}: more than {limit} it was received ({received})",
    )


def decode_all(
    batch: Sequence[Message], options: DecodeOptions
) -> tuple[list[Accepted], list[Rejected]]:
    decoded: list[Accepted] = []
    rejected: list[Rejected] = []
    for msg in batch:
        try:
            out = decode(msg, options)
        except Exception as exc:  # one message must never stop the consumer
            log.exception("decoding a message on %s failed", msg.topic)
            out = Rejected(msg, None, Reason.DECODE_ERROR, f"{type(exc).__name__}: {exc}"[:500])
        if isinstance(out, Rejected):
            rejected.append(out)
        elif isinstance(out, list):
            decoded.extend(out)
        else:
            decoded.append(out)
    return decoded, rejected


def _council_guess(topic: str, prefix: str) -> str | None:
    if not topic.startswith(prefix + "/"):
        return None
    council = topic[len(prefix) + 1 :].split("/", 1)[0]
    return council or None
