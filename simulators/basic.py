"""``placewatch simulate``: N devices per kind publishing valid native JSON at a given rate.

Each device follows a bounded random walk; event times are strictly increasing per device, so
every published message is a distinct reading (the ingest dedupe key is device + time).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from placewatch.kinds import KINDS, Kind
from placewatch.mqtt_wire import MQTT_5
from simulators.wire import broker_protocol
from storage.registry import DeviceSpec

_SHORT = {
    Kind.BIN_FILL: "bin",
    Kind.AIR_QUALITY: "aq",
    Kind.FLOOD_LEVEL: "gauge",
    Kind.HOME_ACTIVITY: "home",
}
_ACTIVITY_SENSORS = ("motion", "door", "power", "bed", "chair")
# Centre of the fictional borough (south London).
_LAT, _LON = 51.4, -0.1


def fleet(council_id: str, per_kind: int, kinds: tuple[Kind, ...] = KINDS) -> list[DeviceSpec]:
    rng = random.Random(f"{council_id}/{per_kind}")
    devices = []
    for kind in kinds:
        for i in range(per_kind):
            props: dict[str, Any] = {}
            resident = None
            if kind is Kind.BIN_FILL:
                props = {"depth_mm": 1200}
            elif kind is Kind.FLOOD_LEVEL:
                props = {"typical_low_m": 0.2, "typical_high_m": 1.5, "alert_level_m": 2.2}
            elif kind is Kind.HOME_ACTIVITY:
                resident = f"r-{i // len(_ACTIVITY_SENSORS):04d}"
                props = {"sensor": _ACTIVITY_SENSORS[i % len(_ACTIVITY_SENSORS)]}
            devices.append(
                DeviceSpec(
                    council_id=council_id,
                    device_id=f"{_SHORT[kind]}-{i:05d}",
                    kind=kind,
                    model="placewatch-sim",
                    site=f"site-{i % 10:02d}",
                    ward=f"ward-{i % 4}",
                    latitude=round(_LAT + rng.uniform(-0.05, 0.05), 6),
                    longitude=round(_LON + rng.uniform(-0.08, 0.08), 6),
                    resident_id=resident,
                    expected_interval_s=600,
                    properties=props,
                )
            )
    return devices


@dataclass
class _State:
    value: float
    last_time: datetime


class ReadingGenerator:
    """Endless round-robin stream of (topic, payload) over a fleet."""

    def __init__(
        self,
        devices: list[DeviceSpec],
        prefix: str,
        seed: int = 0,
        clock: Iterator[datetime] | None = None,
    ) -> None:
        self._devices = devices
        self._prefix = prefix
        self._rng = random.Random(seed)
        self._clock = clock
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        self._state = {d.device_id: _State(self._rng.uniform(0, 50), epoch) for d in devices}

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            for device in self._devices:
                yield self.next_for(device)

    def next_for(self, device: DeviceSpec) -> tuple[str, bytes]:
        st = self._state[device.device_id]
        now = next(self._clock) if self._clock else datetime.now(UTC)
        if now <= st.last_time:
            now = st.last_time + timedelta(microseconds=1)
        st.last_time = now
        body = self._body(device, st)
        body["time"] = now.isoformat()
        topic = f"{self._prefix}/{device.council_id}/{device.kind.value}/{device.device_id}"
        return topic, json.dumps(body, separators=(",", ":")).encode()

    def _body(self, device: DeviceSpec, st: _State) -> dict[str, Any]:
        rng = self._rng
        battery = round(max(5.0, 100 - rng.random() * 3), 1)
        if device.kind is Kind.BIN_FILL:
            st.value = st.value + rng.uniform(0, 3) if st.value < 95 else rng.uniform(0, 5)
            depth = device.properties.get("depth_mm", 1200)
            return {
                "distance_mm": round(depth * (1 - st.value / 100)),
                "fill_pct": round(st.value, 1),
                "temperature_c": round(rng.uniform(5, 25), 1),
                "battery_pct": battery,
            }
        if device.kind is Kind.AIR_QUALITY:
            st.value = min(300.0, max(0.0, st.value + rng.gauss(0, 4)))
            return {
                "no2_ugm3": round(st.value, 1),
                "pm25_ugm3": round(st.value / 4, 1),
                "pm10_ugm3": round(st.value / 2.5, 1),
                "o3_ugm3": round(max(0.0, 60 - st.value / 5), 1),
                "temperature_c": round(rng.uniform(2, 24), 1),
                "humidity_pct": round(rng.uniform(40, 95), 1),
                "battery_pct": battery,
            }
        if device.kind is Kind.FLOOD_LEVEL:
            st.value = min(49.0, max(1.0, st.value + rng.gauss(0, 0.5)))
            return {"level_m": round(0.2 + st.value / 25, 3), "battery_pct": battery}
        sensor = device.properties.get("sensor", "motion")
        body: dict[str, Any] = {"sensor": sensor, "battery_pct": battery}
        if sensor == "motion":
            body["motion_count"] = rng.randint(0, 12)
        elif sensor == "door":
            body["door_open"] = rng.random() < 0.5
        elif sensor == "power":
            body["power_w"] = round(rng.choice([0.0, 0.0, 2800.0 + rng.uniform(-100, 100)]), 1)
        else:
            body["occupied"] = rng.random() < 0.5
        return body


_MAX_UNACKED = 60_000  # below paho's 65,535 message ids


class Publisher:
    """QoS 1 publisher that knows when the broker has acknowledged everything it sent."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str = "",
        qos: int = 1,
        max_inflight: int = 1000,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.qos = qos
        # MQTT 5, or 3.1.1 for a broker that refuses 5 (amqtt, the embedded broker).
        v5 = broker_protocol(host, port, username, password) == MQTT_5
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._acked = 0
        self._sent = 0
        self._cond = threading.Condition()
        self._client.on_publish = self._on_publish
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        if self.qos > 0:
            # paho numbers messages 1..65535 and keys its outgoing queue by that number: with
            # more unacknowledged, a new message would replace an old one, which is never sent.
            with self._cond:
                while self._sent - self._acked >= _MAX_UNACKED:
                    self._cond.wait(1.0)
        self._sent += 1
        self._client.publish(topic, payload, qos=self.qos)

    def backlog(self) -> int:
        return self._sent - self._acked

    def wait_acked(self, timeout: float = 60.0) -> bool:
        """Block until the broker has acknowledged every publish (QoS ≥ 1)."""
        if self.qos == 0:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._acked < self._sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def run_simulation(
    publisher: Publisher,
    generator: Iterable[tuple[str, bytes]],
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    max_backlog: int = 10_000,
) -> int:
    """Publish at ``rate`` msg/s (0 = as fast as the broker takes them). Returns messages sent."""
    sent = 0
    started = time.monotonic()
    for topic, payload in generator:
        if count is not None and sent >= count:
            break
        elapsed = time.monotonic() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        if rate > 0:
            ahead = sent / rate - elapsed
            if ahead > 0:
                time.sleep(ahead)
        while publisher.backlog() > max_backlog:
            time.sleep(0.001)
        publisher.publish(topic, payload)
        sent += 1
    return sent
