"""Which adapter reads a topic (ingest's subscriptions: ``Settings.ingest_network_topics``)."""

from __future__ import annotations

from adapters._uplink import Uplink
from adapters.chirpstack import parse_chirpstack
from adapters.senml import parse_senml
from adapters.ttn import parse_ttn


def adapt(topic: str, payload: bytes, prefix: str, received_at: float) -> list[Uplink] | None:
    """The uplinks a message carries, or None for a native message (or a malformed topic,
    which native decoding reports). Raises ``EnvelopeError``."""
    if topic.startswith("v3/"):
        return parse_ttn(topic, payload)
    if topic.startswith("application/"):
        return parse_chirpstack(topic, payload)
    if topic.startswith(prefix + "/"):
        council, _, tail = topic[len(prefix) + 1 :].partition("/")
        if council and (tail == "senml" or tail.startswith("senml/")):
            device = tail[len("senml/") :] or None
            if device is None or "/" not in device:
                return parse_senml(council, device, payload, received_at)
    return None
