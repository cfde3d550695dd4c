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
        parts = topic[len(prefix) + 1 :].split("/")
        if len(parts) in (2, 3) and parts[1] == "senml" and parts[0]:
            device = parts[2] if len(parts) == 3 and parts[2] else None
            return parse_senml(parts[0], device, payload, received_at)
    return None
