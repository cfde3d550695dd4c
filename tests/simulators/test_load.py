"""Load mode through the real broker: several processes publish valid, distinct readings over a
large fleet, every one acknowledged and delivered. (Its rate is measured by
bench/publish_rate.py, not here.)"""

from __future__ import annotations

import time
import uuid

from ingest.decode import Decoded, DecodeOptions, decode
from ingest.mqtt import Message
from placewatch.cli import build_parser
from placewatch.kinds import KINDS
from simulators.commands import run_simulate_command
from simulators.load import LoadSpec, run_load
from tests.simulators.test_determinism import listening
from tests.support.broker import Broker


def test_load_processes_publish_the_whole_fleet(broker: Broker) -> None:
    prefix = f"pwtest/{uuid.uuid4().hex[:10]}"
    spec = LoadSpec(
        host=broker.host,
        port=broker.port,
        prefix=prefix,
        council="load",
        per_kind=500,
        kinds=KINDS,
        processes=2,
        count=20_000,
    )
    with listening(broker, [f"{prefix}/#"]) as received:
        result = run_load(spec, progress=False)
        deadline = time.monotonic() + 30
        while len(received) < 20_000 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert result.sent == 20_000 and result.acknowledged, result.errors
    assert len(received) == 20_000
    assert {w.sent for w in result.workers} == {10_000}
    keys = set()
    for topic, payload in received:
        out = decode(Message(topic, payload, 1, False, time.time(), 1), DecodeOptions(prefix))
        assert isinstance(out, Decoded), (topic, payload, out)
        keys.add((out.address.device_id, out.reading.time))
    assert len(keys) == 20_000
    assert len({device for device, _ in keys}) == 2_000  # every device of the fleet


def test_load_from_the_command_line(broker: Broker, capsys: object) -> None:
    from placewatch.settings import Settings

    prefix = f"pwtest/{uuid.uuid4().hex[:10]}"
    settings = Settings(mqtt_host=broker.host, mqtt_port=broker.port, topic_prefix=prefix)
    argv = ["simulate", "--load", "--devices", "400", "--processes", "2", "--count", "3000"]
    args = build_parser().parse_args([*argv, "--no-register", "--no-progress"])
    with listening(broker, [f"{prefix}/#"]) as received:
        assert run_simulate_command(args, settings) == 0
        deadline = time.monotonic() + 30
        while len(received) < 3_000 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(received) == 3_000
