"""The Things Stack v3 uplinks on ``v3/{application id}@{tenant id}/devices/{device id}/up``.

TTS leaves out fields whose value is "", 0 or false (``f_cnt`` is absent on frame 0), so every
field is optional here. Event time: the earliest gateway time, else the network server's
``received_at``. Other events (join, downlink, service data) and simulated uplinks carry no
reading: they are refused with their own reason, so they are kept, not dropped.
"""

from __future__ import annotations

from adapters._uplink import (
    EnvelopeError,
    Uplink,
    dev_eui,
    earliest,
    json_object,
    obj,
    text,
    timestamp,
)
from devices.models import ModelHints


def parse_ttn(topic: str, payload: bytes) -> list[Uplink]:
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "v3" or parts[2] != "devices" or "@" not in parts[1]:
        raise EnvelopeError(
            "invalid_topic", f"topic {topic!r} is not v3/<app>@<tenant>/devices/<device>/up"
        )
    event = "/".join(parts[4:])
    if event != "up":
        raise EnvelopeError(
            "not_an_uplink", f"The Things Stack {event!r} event: only uplinks carry readings"
        )
    body = json_object(payload, "The Things Stack uplink")
    if body.get("simulated"):  # any truthy value: refusing keeps it, storing would not undo
        raise EnvelopeError(
            "simulated_uplink", "simulated uplink (sent from the console), not a device's"
        )
    ids = obj(body, "end_device_ids")
    up = obj(body, "uplink_message")
    if not up:
        raise EnvelopeError("missing_field", "uplink_message: field required")
    decoded = up.get("decoded_payload")
    if not isinstance(decoded, dict):
        raise EnvelopeError(
            "not_decoded",
            "uplink_message.decoded_payload is absent: give the device a payload formatter in "
            "The Things Stack, then replay (the raw frm_payload is kept in this dead letter)",
        )
    gateways = up.get("rx_metadata")
    gateway_times = (
        [g.get("time") for g in gateways if isinstance(g, dict)]
        if isinstance(gateways, list)
        else []
    )
    received = text(up, "received_at") or text(body, "received_at")
    time = (
        earliest(gateway_times)
        or timestamp(up.get("received_at"))
        or timestamp(body.get("received_at"))
    )
    if time is None:
        raise EnvelopeError(
            "missing_field", "no gateway time and no received_at: the uplink has no time"
        )
    eui = dev_eui(ids.get("dev_eui"))
    name = text(ids, "device_id") or parts[3]
    versions = obj(up, "version_ids")
    f_cnt = up.get("f_cnt", 0)
    return [
        Uplink(
            network="ttn",
            application=parts[1],
            council_id=None,
            dev_eui=eui,
            device_name=name,
            time=time,
            fields=decoded,
            hints=ModelHints(
                ttn_brand=text(versions, "brand_id"), ttn_model=text(versions, "model_id")
            ),
            dedupe_key=f"ttn:{eui or name}:{f_cnt}:{received}",
        )
    ]
