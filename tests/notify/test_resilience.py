"""Delivery under trouble: a receiver down for a while, a receiver that hangs, one that fails
until its circuit opens, dead letters and redelivery, a dispatcher SIGKILLed, two replicas."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import Counter

from tests.notify.conftest import DeliveryRig, one_team, wait_until
from tests.support.receivers import ReferenceReceiver, SlowReceiver


def assert_each_delivered_once(rig: DeliveryRig, receiver: ReferenceReceiver) -> None:
    deliveries = rig.deliveries()
    assert deliveries and all(d["state"] == "delivered" for d in deliveries)
    ids = [e["webhook_id"] for e in receiver.events()]
    assert sorted(ids) == sorted(d["webhook_id"] for d in deliveries)
    # Exactly one successful attempt per delivery: nothing was sent twice.
    ok = rig.query(
        "SELECT delivery_id, count(*) AS n FROM webhook_attempts"
        " WHERE status BETWEEN 200 AND 299 GROUP BY delivery_id"
    )
    assert len(ok) == len(deliveries) and {r["n"] for r in ok} == {1}
    # An alert's events arrived in order.
    by_alert: dict[int, list[int]] = {}
    for e in receiver.events():
        by_alert.setdefault(e["event"]["alert"]["id"], []).append(e["event"]["sequence"])
    assert all(seq == sorted(seq) for seq in by_alert.values())
    assert not any(e["stale"] for e in receiver.events())


def test_receiver_down_then_back_gets_everything_once_in_order(rig: DeliveryRig) -> None:
    receiver = rig.receiver(start=False)
    one_team(rig, receiver)
    # The circuit opens after 5 failures in a row; a short open period keeps probing.
    rig.dispatcher(notify_breaker_open_s="0.5")
    alerts = [rig.open_alert(f"rule-{i % 3}") for i in range(30)]
    for a in alerts[::2]:
        rig.acknowledge(a)
    wait_until(
        lambda: rig.scalar("SELECT count(*) FROM webhook_attempts") >= 20,
        30,
        "deliveries retried while the receiver is down",
    )
    assert rig.scalar("SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'") == 0
    receiver.start()
    wait_until(
        lambda: len(receiver.events()) == 45, 60, "all 45 events delivered after it came back"
    )
    assert_each_delivered_once(rig, receiver)
    failed = rig.scalar("SELECT count(*) FROM webhook_attempts WHERE status IS NULL")
    assert failed >= 20  # connection refused while it was down, recorded


def test_hanging_endpoint_does_not_delay_another(rig: DeliveryRig) -> None:
    good = rig.receiver()
    hang = rig.hanging_receiver()
    one_team(rig, good, hang.url)
    # A long timeout: the hanging endpoint holds all its slots for the whole test.
    rig.dispatcher(notify_timeout_s="30")
    alerts = [rig.open_alert(f"r{i}") for i in range(40)]
    wait_until(lambda: len(good.events()) == 40, 30, "the good endpoint got all 40")
    lat = [
        r["s"]
        for r in rig.query(
            "SELECT extract(epoch FROM delivered_at - event_committed_at)::float8 AS s"
            " FROM webhook_deliveries WHERE endpoint_id = 'hook0'"
        )
    ]
    hung = rig.query("SELECT * FROM webhook_deliveries WHERE endpoint_id = 'hook1'")
    # Every good delivery landed while the hanging endpoint's first attempts were still open:
    # none of its attempts has even finished (they time out only after 30 s).
    assert len(hung) == 40 and all(d["state"] == "pending" for d in hung)
    assert (
        rig.scalar(
            "SELECT count(*) FROM webhook_attempts WHERE delivery_id IN"
            " (SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = 'hook1')"
        )
        == 0
    )
    assert 1 <= hang.accepted <= 4  # its concurrency, no more
    assert len(alerts) == 40
    print(
        f"\ngood endpoint beside a hanging one: commit->delivered median "
        f"{statistics.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms over {len(lat)}"
    )


def test_failing_endpoint_opens_its_circuit(rig: DeliveryRig) -> None:
    receiver = rig.receiver(start=False)  # connection refused
    one_team(rig, receiver)
    rig.dispatcher(notify_breaker_failures="3", notify_breaker_open_s="3")
    for i in range(10):
        rig.open_alert(f"r{i}")
    wait_until(
        lambda: rig.scalar("SELECT circuit_open_until FROM webhook_endpoints") is not None,
        20,
        "the circuit opened",
    )
    # While open, nothing is attempted; half-open lets one probe through at a time.
    attempts = rig.scalar("SELECT count(*) FROM webhook_attempts")
    assert attempts <= 3 + 4  # the failures that opened it, plus those already in flight
    receiver.start()
    wait_until(lambda: len(receiver.events()) == 10, 30, "all delivered once it closed")
    assert rig.scalar("SELECT consecutive_failures FROM webhook_endpoints") == 0
    assert_each_delivered_once(rig, receiver)


def test_dead_letters_then_redeliver_with_same_webhook_id(rig: DeliveryRig) -> None:
    receiver = rig.receiver(start=False)
    one_team(rig, receiver)
    rig.dispatcher(notify_give_up_after_s="2")
    for i in range(5):
        rig.open_alert(f"r{i}")
    wait_until(
        lambda: rig.scalar("SELECT count(*) FROM webhook_deliveries WHERE state = 'dead'") == 5,
        30,
        "dead-lettered after the give-up time",
    )
    before = {d["delivery_id"]: d["webhook_id"] for d in rig.deliveries()}
    receiver.start()
    out = subprocess.run(
        [sys.executable, "-m", "placewatch", "webhooks", "redeliver", "--endpoint", "hook0"],
        env={**rig.procs[0].env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "5 dead deliveries queued again" in out.stdout
    wait_until(lambda: len(receiver.events()) == 5, 30, "redelivered")
    assert {e["webhook_id"] for e in receiver.events()} == set(before.values())
    assert_each_delivered_once(rig, receiver)


def test_dispatcher_sigkilled_mid_attempts_with_two_replicas(rig: DeliveryRig) -> None:
    receiver = SlowReceiver(rig.secret, delay_s=0.3)
    try:
        one_team(rig, receiver.url)
        a = rig.dispatcher("a", notify_timeout_s="1")
        rig.dispatcher("b", notify_timeout_s="1")
        alerts = [rig.open_alert(f"r{i}") for i in range(60)]
        wait_until(lambda: len(receiver.received) >= 10, 30, "some delivered")
        in_flight = rig.scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
            " AND lease_until > now()"
        )
        a.kill()  # with attempts in flight: their leases run out and b sends them again
        for x in alerts[:30]:
            rig.acknowledge(x)
        a.start()
        wait_until(
            lambda: (
                rig.scalar("SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'")
                == 90
            ),
            90,
            "all 90 events delivered and recorded",
        )
    finally:
        receiver.close()
    deliveries = rig.deliveries()
    assert len(deliveries) == 90 and all(d["state"] == "delivered" for d in deliveries)
    # Every event reached the receiver; a delivery the killed replica had in flight may have
    # arrived twice, under the same webhook-id (at least once; receivers de-duplicate).
    counts = Counter(receiver.received)
    assert set(counts) == {d["webhook_id"] for d in deliveries}
    repeats = sum(n - 1 for n in counts.values())
    assert max(counts.values()) <= 2 and repeats <= 4  # a's slots for the endpoint
    workers = {r["worker"].split(":")[-1] for r in rig.query("SELECT worker FROM webhook_attempts")}
    assert len(workers) >= 2
    print(f"\nin flight at the kill: {in_flight}; received twice: {repeats}")
