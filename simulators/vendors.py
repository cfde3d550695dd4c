"""The real device models the simulator can imitate: what their decoders put in a network
server's uplink (``decoded_payload`` / ``object``) and the bytes on air.

Shapes follow ``shared/data/payloads/decoded-examples.json``: Milesight sends plain numbers,
Decentlab ``{displayName, unit, value}`` objects, Elsys plain numbers with a PIR count since
the last uplink. A device without a built-in model sends its native fields (less ``time``).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from placewatch.kinds import Kind

Fields = dict[str, Any]


@dataclass(frozen=True)
class VendorModel:
    model_id: str  # "brand/model", as TTN's version_ids
    kind: Kind
    profile_name: str  # ChirpStack device-profile name
    f_port: int
    decode: Callable[[Fields, dict[str, Any]], Fields]  # native fields, device properties
    encode: Callable[[Fields], bytes]  # decoded payload → frm_payload bytes

    @property
    def brand_id(self) -> str:
        return self.model_id.split("/", 1)[0]

    @property
    def short_id(self) -> str:
        return self.model_id.split("/", 1)[1]


def _u8(value: float) -> int:
    return int(value) & 0xFF


def _u16(value: float) -> int:
    return int(value) & 0xFFFF


# -- Milesight EM310-UDL: ultrasonic distance, bins ----------------------------------------------


def _em310(fields: Fields, props: dict[str, Any]) -> Fields:
    return {
        "battery": round(fields["battery_pct"]),
        "distance": round(fields["distance_mm"]),
        "tilt": "tilt" if fields.get("tilt") else "normal",
    }


def _em310_bytes(d: Fields) -> bytes:
    # Channels as in the sample 01755c 03824408 040001: battery, distance (mm, LE), tilt.
    tilt = 1 if d["tilt"] == "tilt" else 0
    return (
        bytes([1, 0x75, _u8(d["battery"]), 3, 0x82])
        + struct.pack("<H", _u16(d["distance"]))
        + bytes([4, 0, tilt])
    )


# -- Milesight EM500-SWL: submersible level sensor, gauges ---------------------------------------


def em500_level_cm(level_m: float, props: dict[str, Any]) -> int:
    """Water above the pressure sensor, in cm (the sensor sits ``sensor_datum_m`` above the
    gauge datum). Never negative: out of the water it reads nothing."""
    return max(0, round((level_m - float(props["sensor_datum_m"])) * 100))


def _em500(fields: Fields, props: dict[str, Any]) -> Fields:
    return {
        "battery": round(fields["battery_pct"]),
        "level": em500_level_cm(fields["level_m"], props),
    }


def _em500_bytes(d: Fields) -> bytes:
    return bytes([1, 0x75, _u8(d["battery"]), 3, 0x77]) + struct.pack("<H", _u16(d["level"]))


# -- Decentlab DL-PM: particulate matter, air quality --------------------------------------------


def _quantity(name: str, unit: str, value: float) -> dict[str, Any]:
    return {"displayName": name, "unit": unit, "value": value}


_UGM3 = "µg⋅m⁻³"


def _dl_pm(fields: Fields, props: dict[str, Any]) -> Fields:
    pm25 = fields["pm25_ugm3"]
    pm10 = fields["pm10_ugm3"]
    # Battery 3.0-3.6 V for 0-100 %: what a lithium cell shows over its life.
    volts = round(3.0 + 0.6 * fields.get("battery_pct", 100) / 100, 3)
    return {
        "air_humidity": _quantity("Air humidity", "%", fields["humidity_pct"]),
        "air_temperature": _quantity("Air temperature", "°C", fields["temperature_c"]),
        "barometric_pressure": _quantity(
            "Barometric pressure", "Pa", fields.get("pressure_pa", 101_300)
        ),
        "battery_voltage": _quantity("Battery voltage", "V", volts),
        # Decentlab's own 16-bit device id, as printed on the label.
        "device_id": int(str(props.get("dev_eui") or "1b50")[-4:], 16) % 10_000,
        "pm1_0_mass_concentration": _quantity(
            "PM1.0 mass concentration", _UGM3, round(pm25 * 0.8, 1)
        ),
        "pm2_5_mass_concentration": _quantity("PM2.5 mass concentration", _UGM3, pm25),
        "pm4_mass_concentration": _quantity(
            "PM4 mass concentration", _UGM3, round((pm25 + pm10) / 2, 1)
        ),
        "pm10_mass_concentration": _quantity("PM10 mass concentration", _UGM3, pm10),
        "protocol_version": 2,
    }


def _dl_pm_bytes(d: Fields) -> bytes:
    # Protocol version, device id, then the values as tenths: not Decentlab's exact layout, but
    # bytes of the right size (adapters read the decoded payload).
    values = [
        d["pm1_0_mass_concentration"]["value"],
        d["pm2_5_mass_concentration"]["value"],
        d["pm4_mass_concentration"]["value"],
        d["pm10_mass_concentration"]["value"],
        d["air_temperature"]["value"] + 40,
        d["air_humidity"]["value"],
        d["battery_voltage"]["value"] * 1000,
    ]
    head = struct.pack(">BH", 2, _u16(d["device_id"]))
    return head + b"".join(struct.pack(">H", _u16(round(v * 10))) for v in values)


# -- Elsys ERS: room sensor with PIR, home motion ------------------------------------------------


def _ers(fields: Fields, props: dict[str, Any]) -> Fields:
    return {
        "temperature": fields.get("room_temperature_c", 20.5),
        "humidity": fields.get("room_humidity_pct", 45),
        "light": fields.get("room_light_lux", 40),
        "motion": fields["motion_count"],
    }


def _ers_bytes(d: Fields) -> bytes:
    # As in the sample 0100e2 0229 040027 0506: temperature x10, humidity, light, motion.
    return (
        bytes([1])
        + struct.pack(">h", round(d["temperature"] * 10))
        + bytes([2, _u8(d["humidity"]), 4])
        + struct.pack(">H", _u16(d["light"]))
        + bytes([5, _u8(d["motion"])])
    )


MODELS: dict[str, VendorModel] = {
    m.model_id: m
    for m in (
        VendorModel(
            "milesight-iot/em310-udl",
            Kind.BIN_FILL,
            "Milesight EM310-UDL",
            85,
            _em310,
            _em310_bytes,
        ),
        VendorModel(
            "milesight-iot/em500-swl",
            Kind.FLOOD_LEVEL,
            "Milesight EM500-SWL",
            85,
            _em500,
            _em500_bytes,
        ),
        VendorModel(
            "decentlab/dl-pm", Kind.AIR_QUALITY, "Decentlab DL-PM", 1, _dl_pm, _dl_pm_bytes
        ),
        VendorModel("elsys/ers", Kind.HOME_ACTIVITY, "Elsys ERS", 1, _ers, _ers_bytes),
    )
}
# A device whose readings are the native fields (no vendor decoder).
NATIVE_MODEL = "placewatch-sim"
# Fields a simulated device computes for its vendor payload only, never sent natively.
VENDOR_ONLY_FIELDS = frozenset(
    {"room_temperature_c", "room_humidity_pct", "room_light_lux", "pressure_pa"}
)


def native_payload(fields: Fields) -> Fields:
    return {k: v for k, v in fields.items() if k not in VENDOR_ONLY_FIELDS}


def native_bytes(fields: Fields) -> bytes:
    """frm_payload of a device without a vendor codec: its fields as compact JSON."""
    return json.dumps(native_payload(fields), separators=(",", ":")).encode()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
