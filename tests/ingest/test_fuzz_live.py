"""Bad input through a live ingest: seeded random messages (valid envelopes from the real
samples, mutated ones, random bytes and JSON, JSON Python reads badly) on The Things Stack,
ChirpStack, SenML and native topics: 2,000 by default, PLACEWATCH_FUZZ_MESSAGES=100000 for the
run recorded in docs/reliability.md. Every distinct message must end as its readings or as a
dead letter with a reason, checked message by message against what ``ingest.decode`` says it
carries; and ingest must still be up.

Also here: a refused uplink must not move its device's cumulative counters (or the replay that
follows the fix measures its increase from the wrong place).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from adapters import adapt
from devices.models import MODEL_ADAPTER, builtin_models
from ingest.decode import Decoded, DecodeOptions, Pending, Rejected, decode
from ingest.mqtt import Message
from ingest.uplinks import UplinkResolver
from ingest.writer import message_sha256
from placewatch.kinds import Kind
from storage.registry import DeviceSpec, NetworkApplication, register
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until
from tests.support.uplinks import chirpstack_up, new_eui, ttn_uplink

N = int(os.environ.get("PLACEWATCH_FUZZ_MESSAGES", "2000"))
SEED = 20_261_123
MAX_AGE_S = 366 * 86_400  # ingest's default window, as the oracle applies it

# --- random values ------------------------------------------------------------------------------

STRINGS = [
    "2000 mm",
    "35 cm",
    "0.2 bar",
    "3.9 µg⋅m⁻³",
    "50 °F",
    "open",
    "trigger",
    "tilt",
    "NaN",
    "Infinity",
    "1e999",
    "-0",
    "١٢٣",
    "5 9**9**9",
    "5 (",
    "5 1/0",
    "\x00",
    "x" * 300,
    "2025-04-16T11:54:13.697237014Z",
    "2026-11-23T10:00:00",
    "9999-12-31T23:59:59Z",
]
KEYS = ["value", "unit", "distance", "battery", "level", "motion", "time", "n", "v", "bn", "t"]


def junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.randrange(10 if depth < 3 else 6)
    if roll == 0:
        return None
    if roll == 1:
        return rng.random() < 0.5
    if roll == 2:
        return rng.choice([0, -1, 140, 2**63, 10**400, -(10**400), 3.5, 1e300, -273.15])
    if roll == 3:
        return rng.choice(STRINGS)
    if roll == 4:
        return rng.uniform(-1e4, 1e4)
    if roll == 5:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(12)))
    if roll == 6:
        return {"value": junk(rng, depth + 1), "unit": rng.choice(["mm", "kg", "°C", "(", "%"])}
    if roll == 7:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): junk(rng, depth + 1) for _ in range(rng.randrange(5))}


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*path, i))
    return out


def mutate(rng: random.Random, payload: bytes) -> bytes:
    """One or two parts of a JSON document replaced, deleted, or spliced with JSON Python reads
    badly (a 5,000-digit number, nesting deeper than the stack)."""
    doc = json.loads(payload)
    for _ in range(rng.randrange(1, 3)):
        path = rng.choice(paths(doc))
        if not path:
            doc = junk(rng)
            continue
        node = doc
        for key in path[:-1]:
            node = node[key]
        if rng.random() < 0.3:
            del node[path[-1]]
        else:
            node[path[-1]] = junk(rng)
        if not isinstance(doc, dict | list):
            break
    text = dumps(doc)
    if rng.random() < 0.03:
        fragment = rng.choice([b"9" * 5000, b"[" * 5000 + b"]" * 5000, b"NaN"])
        text = text.replace(b"null", fragment, 1) if b"null" in text else fragment
    return text


# --- the council ------------------------------------------------------------------------------


class Council:
    """The devices and applications the traffic is for, and what ingest should do with each
    uplink (the oracle)."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        c = pipe.council
        self.ttn_app, self.cs_app = f"{c}-fz@ttn", f"{c}-fz-cs"
        self.stranger_app = f"{c}-stranger@ttn"  # belongs to no council
        self.eui = {name: new_eui() for name in ("bin-1", "aq-1", "gauge-1", "pir-1", "fl-s")}
        self.devices = [
            DeviceSpec(c, "bin-1", Kind.BIN_FILL, "milesight-iot/em310-udl",
                       properties={"depth_mm": 2500}, dev_eui=self.eui["bin-1"]),
            # No model in the registry: the uplink's version_ids, profile or tag finds it.
            DeviceSpec(c, "aq-1", Kind.AIR_QUALITY, dev_eui=self.eui["aq-1"]),
            DeviceSpec(c, "gauge-1", Kind.FLOOD_LEVEL, dev_eui=self.eui["gauge-1"]),
            DeviceSpec(c, "pir-1", Kind.HOME_ACTIVITY, resident_id="r-1",
                       dev_eui=self.eui["pir-1"]),
            DeviceSpec(c, "aq-s", Kind.AIR_QUALITY),  # SenML by name
            DeviceSpec(c, "fl-s", Kind.FLOOD_LEVEL, dev_eui=self.eui["fl-s"]),  # SenML by urn
            *(DeviceSpec(c, f"n-{k.value}", k, resident_id="r-2") for k in Kind),  # native
        ]  # fmt: skip
        self.kind = {d.device_id: d.kind for d in self.devices}
        self.by_eui = {d.dev_eui: d.device_id for d in self.devices if d.dev_eui}
        self.council_of_app = {
            ("ttn", self.ttn_app): c,
            ("chirpstack", self.cs_app): c,
        }

    def register(self) -> None:
        with psycopg.connect(self.pipe.database_url) as conn:
            register(
                conn,
                self.pipe.council,
                "Fuzz council",
                self.devices,
                [
                    NetworkApplication("ttn", self.ttn_app),
                    NetworkApplication("chirpstack", self.cs_app),
                ],
            )

    def device_of(self, p: Pending) -> str | None:
        """The registered device an uplink reaches, as ``ingest.uplinks`` finds it."""
        u = p.uplink
        if u.dev_eui and u.dev_eui in self.by_eui:
            return self.by_eui[u.dev_eui]
        council = u.council_id or self.council_of_app.get((u.network, u.application or ""))
        if council == self.pipe.council and u.device_name in self.kind:
            return u.device_name
        return None


# --- traffic ---------------------------------------------------------------------------------


def traffic(rng: random.Random, c: Council, base: datetime) -> list[tuple[str, bytes]]:
    p = c.pipe
    senml = f"{p.prefix}/{p.council}/senml"

    def ttn_bin(i: int, when: datetime) -> tuple[str, bytes]:
        distance = rng.choice(
            [rng.randrange(0, 3000), f"{rng.randrange(0, 3000)} mm",
             {"value": rng.uniform(0, 300), "unit": "cm"}]
        )  # fmt: skip
        decoded = {"battery": rng.randrange(0, 101), "distance": distance, "tilt": "normal"}
        return ttn_uplink(c.ttn_app, "bin-1", c.eui["bin-1"], when, decoded, f_cnt=i + 1)

    def ttn_aq(i: int, when: datetime) -> tuple[str, bytes]:
        decoded = {
            "pm2_5_mass_concentration": {"unit": "µg⋅m⁻³", "value": rng.uniform(0, 80)},
            "pm10_mass_concentration": {"unit": "µg⋅m⁻³", "value": rng.uniform(0, 120)},
            "air_temperature": {"unit": "°C", "value": rng.uniform(-5, 35)},
        }
        return ttn_uplink(
            c.ttn_app, "aq-1", c.eui["aq-1"], when, decoded,
            brand_model=("decentlab", "dl-pm"), f_cnt=i % 3,  # frame 0: no f_cnt at all
        )  # fmt: skip

    def cs_gauge(i: int, when: datetime) -> tuple[str, bytes]:
        decoded = {"battery": 90, "level": rng.uniform(0, 400)}
        return chirpstack_up(
            c.cs_app, c.eui["gauge-1"], when, decoded, profile="Milesight EM500-SWL",
            tags={"sensor_datum_m": "0.5 m"},
        )  # fmt: skip

    def cs_pir(i: int, when: datetime) -> tuple[str, bytes]:
        return chirpstack_up(
            c.cs_app, c.eui["pir-1"], when, {"motion": rng.randrange(0, 20)},
            tags={"model": "elsys/ers"},
        )  # fmt: skip

    def senml_pack(i: int, when: datetime) -> tuple[str, bytes]:
        t0 = when.timestamp()
        pack: list[dict[str, Any]] = [
            {"bn": "aq-s:", "bt": t0, "n": "no2_ugm3", "u": "kg/m3", "v": rng.uniform(0, 2e-7)},
            {"n": "temperature_c", "u": "Cel", "v": rng.uniform(-5, 30)},
        ]
        if rng.random() < 0.5:  # a second time for the same device
            pack.append({"n": "no2_ugm3", "t": 3, "u": "kg/m3", "v": rng.uniform(0, 2e-7)})
        if rng.random() < 0.5:  # and a second device, by DevEUI
            pack.append(
                {"bn": f"urn:dev:eui:{c.eui['fl-s'].upper()}:", "n": "level_m", "u": "cm",
                 "v": rng.uniform(0, 300)}
            )  # fmt: skip
        return senml, dumps(pack)

    def native(i: int, when: datetime) -> tuple[str, bytes]:
        kind = rng.choice(list(Kind))
        fields: dict[Kind, dict[str, Any]] = {
            Kind.BIN_FILL: {"fill_pct": rng.uniform(0, 100)},
            Kind.AIR_QUALITY: {"pm25_ugm3": rng.uniform(0, 60)},
            Kind.FLOOD_LEVEL: {"level_m": rng.uniform(-1, 5)},
            Kind.HOME_ACTIVITY: {"sensor": "door", "door_open": rng.random() < 0.5},
        }
        body: dict[str, Any] = {"time": when.isoformat(), **fields[kind]}
        return p.topic(kind.value, f"n-{kind.value}"), dumps(body)

    def refused_on_purpose(i: int, when: datetime) -> tuple[str, bytes]:
        eui = new_eui()
        choice = rng.randrange(8)
        if choice == 7:  # a unit pint would evaluate for ever: it must not stall ingest
            topic, payload = ttn_bin(i, when)
            return topic, payload.replace(b'"distance": ', b'"distance": "5 9**9**9", "x": ', 1)
        if choice == 0:  # an unknown device
            return ttn_uplink(c.ttn_app, f"new-{i}", eui, when, {"distance": 5}, f_cnt=i + 1)
        if choice == 1:  # an application that belongs to no council
            return ttn_uplink(c.stranger_app, f"x-{i}", eui, when, {"distance": 5}, f_cnt=i + 1)
        if choice == 2:  # no payload formatter
            return ttn_uplink(c.ttn_app, "bin-1", c.eui["bin-1"], when, None, f_cnt=i + 1)
        if choice == 3:
            topic, payload = ttn_bin(i, when)
            return topic, payload.replace(b"{", b'{"simulated": true, ', 1)
        if choice == 4:
            return f"application/{c.cs_app}/device/{eui}/event/join", b'{"devAddr": "00189440"}'
        if choice == 5:
            return f"v3/{c.ttn_app}/devices/bin-1/down/queued", b"{}"
        return p.topic(rng.choice(["weather", "bin_fill"]), f"ghost-{i}"), dumps(
            {"time": when.isoformat(), "fill_pct": 50}
        )

    makers: list[Callable[[int, datetime], tuple[str, bytes]]] = [
        ttn_bin, ttn_aq, cs_gauge, cs_pir, senml_pack, senml_pack, native, refused_on_purpose,
    ]  # fmt: skip
    random_topics = [
        f"v3/{c.ttn_app}/devices/bin-1/up",
        f"v3/{c.stranger_app}/devices/x/up",
        "v3/no-tenant/devices/x/up",
        f"application/{c.cs_app}/device/{c.eui['gauge-1']}/event/up",
        f"application/{c.cs_app}/device/{c.eui['gauge-1']}/event/status",
        senml,
        f"{senml}/aq-s",
        f"{senml}/fl-s/extra",
        p.topic("flood_level", "n-flood_level"),
        f"{p.prefix}/{p.council}",
        f"{p.prefix}/{p.council}/bin_fill/n-bin_fill/extra",
    ]
    messages: list[tuple[str, bytes]] = []
    # 7 s apart, closer in a large run so that all of it stays within the day before now.
    step = min(7.0, 72_000 / N)
    for i in range(N):
        when = base + timedelta(seconds=step * i, microseconds=rng.randrange(1_000_000))
        roll = rng.random()
        if roll < 0.05 and messages:  # the same message again (a redelivery, a retry)
            messages.append(rng.choice(messages))
            continue
        if roll < 0.12:
            messages.append((rng.choice(random_topics), rng.randbytes(rng.randrange(60))))
            continue
        if roll < 0.22:
            messages.append((rng.choice(random_topics), dumps(junk(rng))))
            continue
        topic, payload = rng.choice(makers)(i, when)
        if roll < 0.45:
            payload = mutate(rng, payload)
        messages.append((topic, payload))
    return messages


# --- the test ---------------------------------------------------------------------------------


def test_random_messages_are_each_stored_or_dead_lettered(pipe: Pipeline) -> None:
    c = Council(pipe)
    c.register()
    ingest = pipe.ingest(
        ingest_network_topics=json.dumps(
            ["v3/+/devices/+/+", "v3/+/devices/+/+/+", "application/+/device/+/event/+"]
        )
    )
    rng = random.Random(SEED)
    messages = traffic(rng, c, datetime.now(UTC) - timedelta(days=1))
    # One known uplink among them: ChirpStack tags are device settings ("0.5 m" of datum).
    known = datetime.now(UTC).replace(microsecond=250_000) - timedelta(hours=2)
    messages.append(
        chirpstack_up(
            c.cs_app, c.eui["gauge-1"], known, {"level": 35, "battery": 80},
            profile="Milesight EM500-SWL", tags={"sensor_datum_m": "50 cm"},
        )
    )  # fmt: skip
    started = time.time()
    pipe.publish(messages)
    wait_until(
        lambda: ingest.metric("placewatch_ingest_acked_total") >= len(messages),
        max(60, len(messages) / 200),
        "all acked",
    )
    finished = time.time()
    assert ingest.alive(), ingest.log_tail()
    assert ingest.http("/healthz")[0] == 200 and ingest.http("/readyz")[0] == 200

    distinct = sorted(set(messages))
    shas = [message_sha256(t, p) for t, p in distinct]
    letters = {
        bytes(sha): (reason, detail)
        for sha, reason, detail in pipe.conn.execute(
            "SELECT message_sha256, reason, detail FROM dead_letters"
            " WHERE message_sha256 = ANY(%s)",
            (shas,),
        ).fetchall()
    }
    stored: set[tuple[str, datetime]] = set()
    for kind in Kind:
        stored |= {
            (str(d), t)
            for d, t in pipe.conn.execute(
                f"SELECT device_id, time FROM {kind.value} WHERE council_id = %s", (pipe.council,)
            ).fetchall()
        }

    assert pipe.conn.execute(
        "SELECT level_m, battery_pct FROM flood_level"
        " WHERE council_id = %s AND device_id = 'gauge-1' AND time = %s",
        (pipe.council, known),
    ).fetchall() == [(pytest.approx(0.85), 80.0)]

    # The oracle: what decode says each message carries, where ingest should have put it.
    options = DecodeOptions(pipe.prefix, max_future_s=300, max_age_s=MAX_AGE_S)
    window = (started - 5, finished + 5)  # when ingest received the messages

    def found(device: str | None, t: datetime | float) -> bool:
        """A reading of the device at t, or (t a SenML offset from receipt) in the window."""
        if device is None:
            return False
        if isinstance(t, datetime):
            return (device, t) in stored
        return any(
            d == device and window[0] + t <= at.timestamp() <= window[1] + t for d, at in stored
        )

    unaccounted: list[tuple[str, bytes, str]] = []
    carried: list[tuple[str, datetime | float]] = []  # every reading any message carries
    outcomes: Counter[str] = Counter()
    for (topic, payload), sha in zip(distinct, shas, strict=True):
        out = decode(Message(topic, payload, 0, False, started, 0), options)
        letter = letters.get(sha)
        if isinstance(out, Rejected) and letter is None and out.reason == "future_timestamp":
            # Near the future limit a message refused at `started` is accepted on receipt, up
            # to a minute later in a large run: ask what it carries as of the end instead.
            out = decode(Message(topic, payload, 0, False, finished, 0), options)
        if letter is not None:
            reason, detail = letter
            assert reason and detail, (topic, letter)
            outcomes["dead letter"] += 1
        if isinstance(out, Rejected):
            if letter is None:
                unaccounted.append((topic, payload[:120], f"decode refuses it: {out.reason}"))
            elif out.reason not in ("future_timestamp", "too_old"):
                assert letter[0] == out.reason, (topic, payload[:120], letter, out.reason)
            continue
        keys: list[tuple[str | None, datetime | float]] = []
        if isinstance(out, Decoded):
            device = out.address.device_id if out.address.device_id in c.kind else None
            keys.append((device, out.reading.time))
        elif out[0].uplink.network == "senml":
            # Times below 2**28 are offsets from the receipt: read them as such.
            for u in adapt(topic, payload, pipe.prefix, 0.0) or []:
                t = u.time.timestamp()
                keys.append((c.device_of(Pending(out[0].message, u)), t if t < 2**28 else u.time))
        else:
            keys += [(c.device_of(p), p.uplink.time) for p in out]
        carried += [(d, t) for d, t in keys if d is not None]
        if letter is not None:
            continue  # a dead letter accounts for it (a SenML pack may also be partly stored)
        missing = [(d, t) for d, t in keys if not found(d, t)]
        if missing:
            unaccounted.append((topic, payload[:120], f"not stored: {missing[:3]}"))
        else:
            outcomes["stored"] += 1
            outcomes["readings"] += len(keys)

    assert not unaccounted, f"{len(unaccounted)} messages lost, e.g. {unaccounted[:5]}"
    assert outcomes["dead letter"] + outcomes["stored"] == len(distinct)
    # Nothing stored that no message carries.
    exact = {(d, t) for d, t in carried if isinstance(t, datetime)}
    offsets = [(d, t) for d, t in carried if not isinstance(t, datetime)]
    phantoms = [
        (d, at)
        for d, at in stored - exact
        if not any(
            d == rd and window[0] + off <= at.timestamp() <= window[1] + off for rd, off in offsets
        )
    ]
    assert not phantoms, phantoms[:5]
    # Only the reasons a message can have: none of the "placewatch failed" kind.
    reasons = Counter(reason for reason, _ in letters.values())
    assert not {"decode_error", "storage_error"} & set(reasons), reasons
    assert {
        "invalid_json",
        "not_an_object",
        "invalid_topic",
        "unknown_kind",
        "unknown_device",
        "not_an_uplink",
        "not_decoded",
        "simulated_uplink",
        "out_of_range",
        "invalid_value",
        "invalid_unit",
    } <= set(reasons), reasons
    # Both paths carried real weight, and SenML packs stored more than one reading.
    assert outcomes["dead letter"] > 300 and outcomes["stored"] > 500, outcomes
    assert outcomes["readings"] > outcomes["stored"], outcomes
    # The record (pytest -s) for docs/reliability.md.
    print(f"\nfuzz: {len(messages)} messages, {len(distinct)} distinct, {dict(outcomes)},")
    print(f"in {finished - started:.1f} s; dead-letter reasons: {dict(reasons.most_common())}")


# --- counters and refused uplinks -----------------------------------------------------------

DOOR = MODEL_ADAPTER.validate_python(
    {
        "id": "test/door-counter",
        "kind": "home_activity",
        "name": "door contact counting openings",
        "fields": {
            "sensor": {"value": "door"},
            "door_open": {"from": "DOOR_OPEN_TIMES", "cumulative": True, "above": 0},
            # A setting the device lacks at first: its uplinks are refused until it is added.
            "battery_pct": {"from": "BAT", "unit": "%", "add_setting": "battery_offset_pct"},
        },
    }
)


async def test_a_refused_uplink_leaves_its_counter_for_the_replay(
    database_url: str, ids: tuple[str, str]
) -> None:
    council, prefix = ids
    app, eui = f"{council}-doors@ttn", new_eui()
    with psycopg.connect(database_url) as conn:
        register(
            conn,
            council,
            "Counters",
            [DeviceSpec(council, "door-1", Kind.HOME_ACTIVITY, DOOR.id, resident_id="r-9",
                        dev_eui=eui)],
            [NetworkApplication("ttn", app)],
        )  # fmt: skip
    base = datetime.now(UTC) - timedelta(hours=1)
    pending: list[Pending] = []
    for i, total in enumerate([100, 101, 101, 103]):
        topic, payload = ttn_uplink(
            app, "door-1", eui, base + timedelta(minutes=10 * i),
            {"DOOR_OPEN_TIMES": total, "BAT": 90}, f_cnt=i + 1,
        )  # fmt: skip
        out = decode(Message(topic, payload, 0, False, time.time(), 0), DecodeOptions(prefix))
        assert isinstance(out, list)
        pending += out
    resolver = UplinkResolver(ttl_s=0, _builtin=[*builtin_models(), DOOR])

    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        async with conn.transaction():
            decoded, rejected = await resolver.resolve(conn, pending)
        assert decoded == [] and [r.reason for r in rejected] == ["missing_setting"] * 4
        counters = await conn.execute(
            "SELECT time, value FROM device_counters WHERE council_id = %s", (council,)
        )
        assert await counters.fetchall() == [], "refused uplinks moved the counter"

        # The operator adds the setting and replays: the same uplinks, mapped this time.
        await conn.execute(
            """UPDATE devices SET properties = '{"battery_offset_pct": 0}'
               WHERE council_id = %s""",
            (council,),
        )
        async with conn.transaction():
            decoded, rejected = await resolver.resolve(conn, pending)
        assert rejected == []
        assert [d.reading.model_dump()["door_open"] for d in decoded] == [False, True, False, True]
        counters = await conn.execute(
            "SELECT time, value FROM device_counters WHERE council_id = %s", (council,)
        )
        assert await counters.fetchall() == [(base + timedelta(minutes=30), 103.0)]
