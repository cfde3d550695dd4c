"""Network server envelopes for tests, made from the real samples in ../shared/data/payloads
with only the device, time and decoded payload changed, so adapters meet the real shapes."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "data" / "payloads"


@cache
def sample(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def decoded_examples() -> list[dict[str, Any]]:
    return list(sample("decoded-examples.json"))


def ttn_uplink(
    application: str,
    device_name: str,
    dev_eui: str,
    time: datetime,
    decoded: dict[str, Any] | None,
    *,
    brand_model: tuple[str, str] | None = None,
    f_cnt: int = 1,
) -> tuple[str, bytes]:
    body = copy.deepcopy(sample("ttn-v3-uplink.json"))
    app_id, _, tenant = application.partition("@")
    ids = body["end_device_ids"]
    ids.update(device_id=device_name, dev_eui=dev_eui.upper())
    ids["application_ids"]["application_id"] = app_id
    up = body["uplink_message"]
    server_time = (time + timedelta(milliseconds=90)).isoformat().replace("+00:00", "Z")
    body["received_at"] = up["received_at"] = server_time
    up["rx_metadata"][0]["time"] = time.isoformat().replace("+00:00", "Z")
    up["network_ids"]["tenant_id"] = tenant
    if f_cnt:
        up["f_cnt"] = f_cnt
    else:
        up.pop("f_cnt")  # TTS leaves out zero values
    if decoded is None:
        up.pop("decoded_payload")
    else:
        up["decoded_payload"] = decoded
    if brand_model is None:
        up.pop("version_ids")
    else:
        up["version_ids"].update(brand_id=brand_model[0], model_id=brand_model[1])
    return f"v3/{application}/devices/{device_name}/up", json.dumps(body).encode()


def chirpstack_up(
    application: str,
    dev_eui: str,
    time: datetime,
    decoded: dict[str, Any] | None,
    *,
    profile: str | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    body = copy.deepcopy(sample("chirpstack-v4-up.json"))
    body["deduplicationId"] = str(uuid.uuid4())
    body["time"] = (time + timedelta(milliseconds=120)).isoformat()
    info = body["deviceInfo"]
    info.update(applicationId=application, devEui=dev_eui.lower(), tags=tags or {})
    if profile is not None:
        info["deviceProfileName"] = profile
    body["rxInfo"][0]["gwTime"] = time.isoformat()
    if decoded is not None:
        body["object"] = decoded
    return f"application/{application}/device/{dev_eui.lower()}/event/up", json.dumps(body).encode()


def new_eui() -> str:
    return uuid.uuid4().hex[:16]
