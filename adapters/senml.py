"""SenML packs (RFC 8428, JSON) on ``{prefix}/{council}/senml[/{device}]``.

Records are resolved as the RFC says: name = base name + name, time = base time + time (a
result below 2**28 is relative to the time of receipt), value = base value + value, unit = unit
or base unit. The device is the resolved name up to its last ``:`` or ``/`` (``bn`` is
``"{device}:"``, or ``"urn:dev:eui:{dev eui}:"``), the field is the rest; a topic that names the
device lets records carry bare field names, and a record there naming another device is refused
(each device's broker login may write only its own topic). One uplink per (device, time). A
pack with a must-understand field (a name ending in "_", RFC 8428 §4.4) or with no value at all
is refused.
CBOR packs are not read here (dead-lettered as invalid JSON, kept for replay once they are).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from adapters._uplink import EnvelopeError, Uplink, json_value
from devices.models import ModelHints
from placewatch.rejections import short_repr

_RELATIVE_LIMIT = 2**28  # RFC 8428 §4.5.3
_URN_EUI = re.compile(r"^urn:dev:(?:eui|mac|ow):([0-9a-fA-F]{16})$")


def parse_senml(
    council_id: str, topic_device: str | None, payload: bytes, received_at: float
) -> list[Uplink]:
    pack = json_value(payload, "SenML pack")
    if not isinstance(pack, list) or not pack:
        raise EnvelopeError("not_an_object", "SenML pack: a non-empty JSON array is expected")
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    base: dict[str, Any] = {"bn": "", "bt": 0.0, "bu": None, "bv": 0.0, "bs": 0.0}
    for i, record in enumerate(pack):
        if not isinstance(record, dict):
            raise EnvelopeError("not_an_object", f"[{i}]: a SenML record must be an object")
        for key in record:
            if key.endswith("_"):  # RFC 8428 §4.4: must-understand fields: reject the pack
                raise EnvelopeError(
                    "invalid_value",
                    f"[{i}].{key[:60]}: a must-understand field this reader does not know",
                )
        for key in ("bn", "bu"):
            if key in record:
                base[key] = _typed(record, key, str, i)
        for key in ("bt", "bv", "bs"):
            if key in record:
                base[key] = _number(record, key, i)
        value = _value(record, base, i)
        if value is None:
            if "n" in record:
                raise EnvelopeError("missing_field", f"[{i}]: record has a name but no value")
            continue  # a record of base fields only
        name = base["bn"] + _typed(record, "n", str, i) if "n" in record else base["bn"]
        device, field = _split(name, topic_device, i)
        t = base["bt"] + (_number(record, "t", i) if "t" in record else 0.0)
        if t < _RELATIVE_LIMIT:
            t += received_at
        unit = _typed(record, "u", str, i) if "u" in record else base["bu"]
        entry = {"value": value, "unit": unit} if isinstance(value, float) and unit else value
        groups.setdefault((device, t), {})[field] = entry
    if not groups:  # nothing to store: refused, so it is kept rather than lost
        raise EnvelopeError("missing_field", "SenML pack: no record has a value")
    return [
        _uplink(council_id, device, t, fields) for (device, t), fields in sorted(groups.items())
    ]


def _uplink(council_id: str, device: str, t: float, fields: dict[str, Any]) -> Uplink:
    try:
        time = datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError):
        raise EnvelopeError("invalid_value", f"{device}: time {t!r} is out of range") from None
    m = _URN_EUI.match(device)
    return Uplink(
        network="senml",
        application=None,
        council_id=council_id,
        dev_eui=m.group(1).lower() if m else None,
        device_name=device,
        time=time,
        fields=fields,
        hints=ModelHints(),
        dedupe_key=f"senml:{council_id}:{device}:{t!r}",
    )


def _value(record: dict[str, Any], base: dict[str, Any], i: int) -> float | str | bool | None:
    if "v" in record:
        return float(base["bv"]) + _number(record, "v", i)
    if "s" in record:  # a sum (e.g. a cumulative count) is the value when no v is given
        return float(base["bs"]) + _number(record, "s", i)
    if "vs" in record:
        return str(_typed(record, "vs", str, i))
    if "vb" in record:
        return bool(_typed(record, "vb", bool, i))
    if "vd" in record:
        raise EnvelopeError("invalid_value", f"[{i}].vd: data values are not readings")
    return None


def _split(name: str, topic_device: str | None, i: int) -> tuple[str, str]:
    cut = max(name.rfind(":"), name.rfind("/"))
    device, field = (name[:cut], name[cut + 1 :]) if cut > 0 else (topic_device or "", name)
    if not device or not field:
        raise EnvelopeError(
            "missing_field",
            f'[{i}]: name {name!r} names no device (use bn "<device>:" or a '
            "…/senml/<device> topic)",
        )
    if topic_device is not None and device != topic_device:
        # A device's broker login may write only its own …/senml/<device> topic: a pack there
        # must not speak for another device (or the per-device ACL would mean nothing).
        raise EnvelopeError(
            "invalid_value",
            f"[{i}]: name {short_repr(name)} names device {short_repr(device)}, but the topic "
            f"is device {topic_device!r}'s: on …/senml/<device> use bare field names",
        )
    return device, field


def _number(record: dict[str, Any], key: str, i: int) -> float:
    value = record[key]
    try:  # an integer beyond a float's range overflows
        number = float(value) if isinstance(value, int | float) else math.nan
    except OverflowError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise EnvelopeError(
            "invalid_value", f"[{i}].{key}={short_repr(value)}: a finite number is needed"
        )
    return number


def _typed(record: dict[str, Any], key: str, kind: type, i: int) -> Any:
    value = record[key]
    if not isinstance(value, kind):
        raise EnvelopeError(
            "invalid_value", f"[{i}].{key}={short_repr(value)}: a {kind.__name__} is needed"
        )
    return value
