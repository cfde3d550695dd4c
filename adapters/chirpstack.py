"""ChirpStack v4 events on ``application/{application id}/device/{dev eui}/event/{type}``,
JSON marshaler.

Only ``up`` events carry readings; the decoded values are in ``object`` (the device profile's
codec). Event time: the earliest gateway ``gwTime``, else ``nsTime``, else the event's ``time``.
``deviceInfo.tags`` can carry per-device settings and a ``model`` tag.
"""

from __future__ import annotations

from adapters._uplink import (
    EnvelopeError,
    Uplink,
    dev_eui,
    earliest,
    json_object,
    obj,
    string_tags,
    text,
    timestamp,
)
from devices.models import ModelHints


def parse_chirpstack(topic: str, payload: bytes) -> list[Uplink]:
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "application" or parts[2] != "device" or parts[4] != "event":
        raise EnvelopeError(
            "invalid_topic",
            f"topic {topic!r} is not application/<application>/device/<dev eui>/event/up",
        )
    if parts[5] != "up":
        raise EnvelopeError(
            "not_an_uplink", f"ChirpStack {parts[5]!r} event: only uplinks carry readings"
        )
    body = json_object(payload, "ChirpStack up event")
    info = obj(body, "deviceInfo")
    decoded = body.get("object")
    if not isinstance(decoded, dict):
        raise EnvelopeError(
            "not_decoded",
            "no decoded 'object': give the device profile a codec in ChirpStack, then replay "
            "(the raw data is kept in this dead letter)",
        )
    rx = body.get("rxInfo")
    gateways = [g for g in rx if isinstance(g, dict)] if isinstance(rx, list) else []
    time = (
        earliest([g.get("gwTime") for g in gateways])
        or earliest([g.get("nsTime") for g in gateways])
        or timestamp(body.get("time"))
    )
    if time is None:
        raise EnvelopeError("missing_field", "no gwTime, nsTime or time: the uplink has no time")
    eui = dev_eui(info.get("devEui")) or dev_eui(parts[3])
    dedupe = text(body, "deduplicationId")
    return [
        Uplink(
            network="chirpstack",
            application=parts[1],  # the topic is what the broker ACL vouches for
            council_id=None,
            dev_eui=eui,
            device_name=eui or parts[3],
            time=time,
            fields=decoded,
            hints=ModelHints(
                chirpstack_profile=text(info, "deviceProfileName"),
                tags=string_tags(info.get("tags")),
            ),
            dedupe_key=f"chirpstack:{dedupe}" if dedupe else f"chirpstack:{eui}:{time.isoformat()}",
        )
    ]
