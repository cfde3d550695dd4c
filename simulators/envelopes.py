"""The same reading as each source sends it: native JSON, a The Things Stack v3 uplink, a
ChirpStack v4 ``up`` event, or SenML (RFC 8428). Envelope shapes follow the samples in
``shared/data/payloads/``; the network metadata (gateway, RSSI, SNR, frame counters, network
server delay, ChirpStack deduplication id) is drawn per device from the run's seed, so the same
seed gives the same bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from simulators import spec as s
from simulators.dynamics import Emission
from simulators.identity import name_uuid, rng, uuid_from
from simulators.scenario import Scenario, SimDevice
from simulators.vendors import b64, native_bytes, native_payload

Format = Literal["native", "ttn", "chirpstack", "senml", "mixed"]
FORMATS: tuple[Format, ...] = ("native", "ttn", "chirpstack", "senml", "mixed")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# SenML unit and the factor from the native unit, per native field (RFC 8428 §12.1, RFC 8798).
SENML_UNITS: dict[str, tuple[str, float]] = {
    "fill_pct": ("%", 1),
    "battery_pct": ("%EL", 1),
    "humidity_pct": ("%RH", 1),
    "temperature_c": ("Cel", 1),
    "power_w": ("W", 1),
    "level_m": ("m", 1),
    "distance_mm": ("m", 1e-3),
    "no2_ugm3": ("kg/m3", 1e-9),
    "pm25_ugm3": ("kg/m3", 1e-9),
    "pm10_ugm3": ("kg/m3", 1e-9),
    "o3_ugm3": ("kg/m3", 1e-9),
    "so2_ugm3": ("kg/m3", 1e-9),
    "co2_ppm": ("ppm", 1),
    "motion_count": ("count", 1),
}


def when(t_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=t_us)


def iso(t_us: int) -> str:
    return when(t_us).isoformat()


def _nanos(t_us: int, ns: int, zulu: bool = True) -> str:
    """RFC 3339 with nanoseconds, as network servers write times."""
    moment = when(t_us)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{ns:03d}"
    return text + ("Z" if zulu else "+00:00")


def prune(value: Any, keep: frozenset[str] = frozenset()) -> Any:
    """Drop fields whose value is "", 0 or false (and empty objects), as protobuf's JSON
    mapping does; ``keep`` names objects left as they are (decoder output)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = item if key in keep else prune(item, keep)
            if item == "" or item is False or item == {} or item == []:
                continue
            if isinstance(item, int | float) and not isinstance(item, bool) and item == 0:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [prune(v, keep) for v in value]
    return value


class _Radio:
    """What a device's uplinks look like on air and at the network server."""

    def __init__(self, device: SimDevice, seed: int) -> None:
        layout = rng(device.spec.council_id, device.device_id, "radio")
        self.rssi = layout.randint(-118, -72)
        self.snr = round(layout.uniform(-8, 10), 2)
        self.spreading_factor = layout.choice((7, 7, 8, 9, 10, 11))
        self.gateway = f"{device.spec.council_id}-gw-{device.spec.ward or 'main'}"
        self.gateway_eui = name_uuid("gateway", self.gateway).hex[:16]
        self.dev_addr = layout.getrandbits(32)
        self.session = b64(layout.randbytes(16))
        self.r = rng(seed, device.device_id, "radio")
        self.f_cnt = 0

    def next_frame(self) -> int:
        count = self.f_cnt
        self.f_cnt += 1
        return count

    def sample(self) -> tuple[int, float]:
        return self.rssi + self.r.randint(-4, 4), round(self.snr + self.r.gauss(0, 1.5), 1)


class Encoder:
    """Turns emissions into (topic, payload) in the chosen format. ``mixed`` sends each device
    the way its scenario group says (``network``)."""

    def __init__(self, scenario: Scenario, prefix: str, fmt: Format, seed: int) -> None:
        self.scenario = scenario
        self.prefix = prefix
        self.fmt = fmt
        self.seed = seed
        self._radios: dict[str, _Radio] = {}
        self._networks = scenario.spec.networks
        for wanted in ("ttn", "chirpstack"):
            if fmt == wanted and not any(n.kind == wanted for n in self._networks):
                raise ValueError(
                    f"--format {fmt}: the scenario declares no {wanted} network under networks"
                )

    def route(self, device: SimDevice) -> s.TtnNetwork | s.ChirpStackNetwork | str:
        """Where a device's uplinks go in this format."""
        if self.fmt == "mixed":
            return device.network
        if self.fmt in ("native", "senml"):
            return self.fmt
        own = device.network
        if not isinstance(own, str) and own.kind == self.fmt:
            return own
        return next(n for n in self._networks if n.kind == self.fmt)

    def encode(self, e: Emission) -> tuple[str, bytes]:
        network = self.route(e.device)
        stamp = e.stamp_us if e.stamp_us is not None else e.t_us
        if network == "native":
            return self.native(e, stamp)
        if network == "senml":
            return self.senml(e, stamp)
        radio = self._radios.get(e.device.device_id)
        if radio is None:
            radio = self._radios[e.device.device_id] = _Radio(e.device, self.seed)
        if isinstance(network, s.TtnNetwork):
            return self.ttn(e, stamp, network, radio)
        assert isinstance(network, s.ChirpStackNetwork)
        return self.chirpstack(e, stamp, network, radio)

    def native(self, e: Emission, stamp: int) -> tuple[str, bytes]:
        d = e.device
        topic = f"{self.prefix}/{d.spec.council_id}/{d.kind.value}/{d.device_id}"
        return topic, _DUMPS({"time": iso(stamp), **native_payload(e.fields)}).encode()

    def senml(self, e: Emission, stamp: int) -> tuple[str, bytes]:
        d = e.device
        records: list[dict[str, Any]] = []
        for name, value in native_payload(e.fields).items():
            if isinstance(value, bool):
                records.append({"n": name, "vb": value})
            elif isinstance(value, str):
                records.append({"n": name, "vs": value})
            else:
                unit, factor = SENML_UNITS[name]
                scaled = float(f"{value * factor:.6g}") if factor != 1 else value
                records.append({"n": name, "u": unit, "v": scaled})
        records[0] = {"bn": f"{d.device_id}:", "bt": stamp / 1_000_000, **records[0]}
        return f"{self.prefix}/{d.spec.council_id}/senml", _DUMPS(records).encode()

    def _decoded(self, e: Emission) -> tuple[dict[str, Any], bytes, int]:
        model = e.device.model
        if model is None:
            return native_payload(e.fields), native_bytes(e.fields), 2
        props = {**e.device.spec.properties, "dev_eui": e.device.spec.dev_eui}
        decoded = model.decode(e.fields, props)
        return decoded, model.encode(decoded), model.f_port

    def ttn(self, e: Emission, stamp: int, net: s.TtnNetwork, radio: _Radio) -> tuple[str, bytes]:
        d = e.device
        decoded, raw, port = self._decoded(e)
        r = radio.r
        at_ns = stamp + r.randint(50_000, 300_000)
        at_as = at_ns + r.randint(2_000, 30_000)
        rssi, snr = radio.sample()
        eui = (d.spec.dev_eui or "").upper()
        uplink: dict[str, Any] = {
            "session_key_id": radio.session,
            "f_port": port,
            "f_cnt": radio.next_frame(),
            "frm_payload": b64(raw),
            "decoded_payload": decoded,
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": radio.gateway, "eui": radio.gateway_eui.upper()},
                    "time": _nanos(stamp, r.randint(0, 499)),
                    "timestamp": stamp % 2**32,
                    "rssi": rssi,
                    "channel_rssi": rssi,
                    "snr": snr,
                }
            ],
            "settings": {
                "data_rate": {
                    "lora": {
                        "bandwidth": 125_000,
                        "spreading_factor": radio.spreading_factor,
                        "coding_rate": "4/5",
                    }
                },
                "frequency": "868100000",
            },
            "received_at": _nanos(at_ns, r.randint(0, 999)),
            "consumed_airtime": f"{0.05 * 2 ** (radio.spreading_factor - 7):.6f}s",
        }
        if d.model is not None:
            uplink["version_ids"] = {
                "brand_id": d.model.brand_id,
                "model_id": d.model.short_id,
                "band_id": "EU_863_870",
            }
        uplink["network_ids"] = {
            "net_id": "000013",
            "tenant_id": net.tenant,
            "cluster_id": net.cluster,
        }
        body = {
            "end_device_ids": {
                "device_id": d.device_id,
                "application_ids": {"application_id": net.application},
                "dev_eui": eui,
                "join_eui": "70B3D57ED0000000",
                "dev_addr": f"{radio.dev_addr:08X}",
            },
            "correlation_ids": [f"gs:uplink:{uuid_from(r).hex.upper()[:26]}"],
            "received_at": _nanos(at_as, r.randint(0, 999)),
            "uplink_message": uplink,
        }
        topic = f"v3/{net.application}@{net.tenant}/devices/{d.device_id}/up"
        return topic, _DUMPS(prune(body, frozenset({"decoded_payload"}))).encode()

    def chirpstack(
        self, e: Emission, stamp: int, net: s.ChirpStackNetwork, radio: _Radio
    ) -> tuple[str, bytes]:
        d = e.device
        decoded, raw, port = self._decoded(e)
        r = radio.r
        dedup = uuid_from(r)
        at_ns = stamp + r.randint(50_000, 300_000)
        rssi, snr = radio.sample()
        profile = d.model.profile_name if d.model else f"placewatch simulated {d.kind.value}"
        tags = {"site": d.spec.site or "", "ward": d.spec.ward or ""}
        tags.update({k: str(v) for k, v in d.spec.properties.items()})
        body = {
            "deduplicationId": str(dedup),
            "time": _nanos(at_ns, r.randint(0, 999), zulu=False),
            "deviceInfo": {
                "tenantId": str(net.tenant_id),
                "tenantName": net.tenant_name,
                "applicationId": str(net.application_id),
                "applicationName": net.application_name,
                "deviceProfileId": str(name_uuid("profile", profile)),
                "deviceProfileName": profile,
                "deviceName": d.device_id,
                "devEui": d.spec.dev_eui,
                "deviceClassEnabled": "CLASS_A",
                "tags": tags,
            },
            "devAddr": f"{radio.dev_addr:08x}",
            "adr": True,
            "dr": 12 - radio.spreading_factor,
            "fCnt": radio.next_frame(),
            "fPort": port,
            "confirmed": False,
            "data": b64(raw),
            "object": decoded,
            "rxInfo": [
                {
                    "gatewayId": radio.gateway_eui,
                    "uplinkId": r.getrandbits(32),
                    "gwTime": _nanos(stamp, r.randint(0, 499)),
                    "nsTime": _nanos(at_ns, r.randint(0, 999)),
                    "rssi": rssi,
                    "snr": snr,
                    "channel": 0,
                    "context": b64(r.randbytes(4)),
                    "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
                    "crcStatus": "CRC_OK",
                }
            ],
            "txInfo": {
                "frequency": 868_100_000,
                "modulation": {
                    "lora": {
                        "bandwidth": 125_000,
                        "spreadingFactor": radio.spreading_factor,
                        "codeRate": "CR_4_5",
                    }
                },
            },
        }
        topic = f"application/{net.application_id}/device/{d.spec.dev_eui}/event/up"
        return topic, _DUMPS(prune(body, frozenset({"object", "tags"}))).encode()
