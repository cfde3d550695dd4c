"""The consumer a council developer writes first: the baseline ``bench.drain`` compares with.

paho-mqtt with a persistent session (MQTT 3.1.1, ``clean_session=False``, QoS 1, so that it can
drain what the broker kept while it was away), and in ``on_message``: ``json.loads`` and one
``INSERT`` per message on an autocommit connection. No batching, no COPY, no validation beyond
what the table's constraints do; a re-delivered reading is skipped by ``ON CONFLICT DO NOTHING``.
paho acknowledges each message when ``on_message`` returns, whatever happened in it. An insert
that fails is printed and the message is dropped, as in the tutorials.

Run by the benchmark as a subprocess; it runs until SIGTERM or SIGINT::

    python -m bench.naive_consumer --port 1883 --client-id naive-1 --topic 'placewatch/#' \\
        --database-url postgresql://127.0.0.1/placewatch
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from placewatch.kinds import MEASUREMENT_COLUMNS

# Columns of each reading table (the tables' own list, so the two cannot drift). Payload fields
# have the column names; a field the payload lacks is stored as NULL.
COLUMNS: dict[str, tuple[str, ...]] = {k.value: cols for k, cols in MEASUREMENT_COLUMNS.items()}

INSERTS = {
    table: (
        f"INSERT INTO {table} (time, council_id, device_id, {', '.join(cols)}, received_at) "
        f"VALUES (%(time)s, %(council_id)s, %(device_id)s, "
        f"{', '.join(f'%({c})s' for c in cols)}, now()) ON CONFLICT DO NOTHING"
    )
    for table, cols in COLUMNS.items()
}


class NaiveConsumer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = psycopg.connect(args.database_url, autocommit=True)
        self.residents: dict[tuple[str, str], str | None] = {}
        self.received = 0
        self.errors = 0
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=args.client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=False,
        )
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message

    def on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        print(f"connected: {reason_code}", file=sys.stderr, flush=True)
        client.subscribe(self.args.topic, qos=1)

    def on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, props: Any
    ) -> None:
        print(f"subscribed to {self.args.topic}: {reason_codes}", file=sys.stderr, flush=True)
        if self.args.ready_file:
            Path(self.args.ready_file).touch()

    def on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            # <prefix>/<council>/<kind>/<device>
            council_id, kind, device_id = msg.topic.split("/")[-3:]
            data = json.loads(msg.payload)
            row = {c: data.get(c) for c in COLUMNS[kind]}
            row.update(time=data["time"], council_id=council_id, device_id=device_id)
            if kind == "home_activity":
                row["resident_id"] = self.resident(council_id, device_id)
            self.db.execute(INSERTS[kind], row)
        except Exception as exc:
            self.errors += 1
            print(f"error: {msg.topic}: {exc!r}", file=sys.stderr, flush=True)

    def resident(self, council_id: str, device_id: str) -> str | None:
        """The resident a home sensor belongs to, looked up once per device."""
        key = (council_id, device_id)
        if key not in self.residents:
            found = self.db.execute(
                "SELECT resident_id FROM devices WHERE council_id = %s AND device_id = %s", key
            ).fetchone()
            self.residents[key] = found[0] if found else None
        return self.residents[key]

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.client.disconnect()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.client.connect(self.args.host, self.args.port, keepalive=60)
        self.client.loop_forever()
        self.db.close()
        print(
            f"stopped: {self.received} messages received, {self.errors} errors",
            file=sys.stderr,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.naive_consumer", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--client-id", required=True)
    p.add_argument("--topic", required=True, help="subscription, e.g. 'placewatch/#'")
    p.add_argument("--database-url", required=True)
    p.add_argument("--ready-file", help="touched once the subscription is acknowledged")
    NaiveConsumer(p.parse_args(argv)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
