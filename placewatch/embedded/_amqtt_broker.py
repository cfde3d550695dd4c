"""The embedded Python broker: amqtt 0.12.1 on 127.0.0.1, run as its own process by
``placewatch.embedded.broker.start_amqtt`` (``python -m placewatch.embedded._amqtt_broker PORT``)
so that it can be stopped (SIGTERM) or killed like Mosquitto.

amqtt speaks MQTT 3.1.1 only (it refuses MQTT 5 with CONNACK "unacceptable protocol version"),
keeps everything in memory (sessions and queued messages do not survive a restart), and has no
queue or in-flight limits. Four of its behaviours break placewatch's delivery contract, so they
are changed here, for amqtt 0.12.1 exactly (``check_version``):

* **Anonymous sessions are not persistent.** amqtt queues nothing for a disconnected session that
  logged in anonymously and deletes it. ``OpenAuthPlugin`` lets every client in (a loopback demo
  and test broker) without marking it anonymous, so a session without clean session keeps its
  subscriptions and gets its QoS 1 messages queued while it is away.
* **Unacknowledged QoS 1 messages are dropped.** amqtt waits 5 s for a PUBACK, then forgets the
  message, and forgets every unacknowledged message when the connection closes, so nothing
  is redelivered after a consumer crash, and a consumer that acks only after its database commit
  loses whatever took longer. ``_qos1_outgoing`` keeps a delivered message in the session's
  in-flight set until its PUBACK arrives, however late; the set is resent (DUP set) to the next
  connection of the session (``_send_backlog``). A PUBACK nobody waits for any more still clears
  the message it names.
* **Messages of a publisher that disconnects are dropped.** amqtt acknowledges a QoS 1 PUBLISH
  when it has queued it for the publisher's session loop, which hands one message per turn to
  the subscribers, and stops at the disconnection, discarding the rest of the queue: a publisher
  that sends 100 and disconnects once all are acknowledged had about half of them delivered
  (measured). ``_client_message_loop`` hands the rest over before ending the session.
* **A returning subscriber is not served until its backlog is acknowledged.** amqtt sends the
  messages queued for a session, and resends those in flight, and waits for all their PUBACKs
  before it reads the client's SUBSCRIBE. It has no in-flight limit, so the SUBACK comes after
  the whole backlog, behind messages ingest does not read until it has committed those before
  (its window): ingest is not "subscribed" (not ready) for as long as the backlog takes, or
  never if its window fills first. Here the backlog is sent after the SUBACK (or after 1 s if the
  client does not subscribe), and neither send waits for PUBACKs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from importlib.metadata import version
from typing import Any

from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler  # type: ignore[import-untyped]
from amqtt.mqtt.puback import PubackPacket  # type: ignore[import-untyped]
from amqtt.plugins.base import BaseAuthPlugin  # type: ignore[import-untyped]
from amqtt.session import (  # type: ignore[import-untyped]
    OUTGOING,
    IncomingApplicationMessage,
    OutgoingApplicationMessage,
    Session,
)

AMQTT_VERSION = "0.12.1"  # the version whose internals the changes above were written for

log = logging.getLogger("placewatch.embedded.amqtt")


def check_version() -> None:
    found = version("amqtt")
    if found != AMQTT_VERSION:
        raise RuntimeError(
            f"amqtt {found} is installed; the embedded broker is written for {AMQTT_VERSION}"
            " (it changes two of its internals): install amqtt=={AMQTT_VERSION}"
        )


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Every client may connect, and none counts as anonymous (see the module's docstring)."""

    async def authenticate(self, *, session: Session) -> bool | None:
        session.is_anonymous = False
        return True


_original_qos1 = BrokerProtocolHandler._handle_qos1_message_flow
_original_puback = BrokerProtocolHandler.handle_puback


async def _qos1_outgoing(
    self: BrokerProtocolHandler,
    app_message: OutgoingApplicationMessage | IncomingApplicationMessage,
) -> None:
    """amqtt's QoS 1 sending flow, without the 5 s limit, and keeping the message in flight
    unless a PUBACK removed it. Incoming messages go through amqtt's own flow."""
    if app_message.direction != OUTGOING or not isinstance(app_message, OutgoingApplicationMessage):
        await _original_qos1(self, app_message)
        return
    session = self.session
    packet_id = app_message.packet_id
    if session is None or packet_id is None:
        raise RuntimeError("QoS 1 delivery without a session or packet id")
    session.inflight_out[packet_id] = app_message
    resend = app_message.publish_packet is not None
    packet = app_message.build_publish_packet(dup=resend)
    waiter: asyncio.Future[PubackPacket] = asyncio.get_running_loop().create_future()
    self._puback_waiters[packet_id] = waiter
    try:
        await self._send_packet(packet)
        app_message.publish_packet = packet
        app_message.puback_packet = await waiter
        session.inflight_out.pop(packet_id, None)
    finally:
        if self._puback_waiters.get(packet_id) is waiter:
            del self._puback_waiters[packet_id]


async def _puback(self: BrokerProtocolHandler, puback: PubackPacket) -> None:
    """A PUBACK nobody waits for any more still acknowledges the message it names."""
    header = puback.variable_header
    if header is not None and header.packet_id not in self._puback_waiters:
        if self.session is not None:
            self.session.inflight_out.pop(header.packet_id, None)
        return
    await _original_puback(self, puback)


def _done(result: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


async def _client_message_loop(
    self: Broker, client_session: Session, handler: BrokerProtocolHandler
) -> None:
    """amqtt's loop over a client's disconnection, subscriptions and published messages, except
    that at the disconnection the messages it published and amqtt acknowledged are delivered."""
    disconnect_waiter = asyncio.ensure_future(handler.wait_disconnect())
    subscribe_waiter = asyncio.ensure_future(handler.get_next_pending_subscription())
    unsubscribe_waiter = asyncio.ensure_future(handler.get_next_pending_unsubscription())
    wait_deliver = asyncio.ensure_future(handler.mqtt_deliver_next_message())
    backlog = True  # the session's queue is still to be sent (after the first SUBACK)
    try:
        while True:
            done, _ = await asyncio.wait(
                [disconnect_waiter, subscribe_waiter, unsubscribe_waiter, wait_deliver],
                timeout=1.0 if backlog else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            subscribed = subscribe_waiter in done
            if subscribed:
                await self._handle_subscription(client_session, handler, subscribe_waiter)
                subscribe_waiter = asyncio.ensure_future(handler.get_next_pending_subscription())
            if backlog and (subscribed or not done):
                backlog = False
                _send_backlog(handler, client_session)
            if unsubscribe_waiter in done:
                await self._handle_unsubscription(client_session, handler, unsubscribe_waiter)
                unsubscribe_waiter = asyncio.ensure_future(
                    handler.get_next_pending_unsubscription()
                )
            if wait_deliver in done:
                if not await self._handle_message_delivery(client_session, handler, wait_deliver):
                    break
                wait_deliver = asyncio.ensure_future(handler.mqtt_deliver_next_message())
            if disconnect_waiter in done:
                wait_deliver.cancel()  # it returns the message it may have taken, else None
                taken = (await asyncio.gather(wait_deliver, return_exceptions=True))[0]
                queue = client_session.delivered_message_queue
                left = [taken] if taken is not None and not isinstance(taken, BaseException) else []
                while not queue.empty():
                    left.append(queue.get_nowait())
                for message in left:
                    await self._handle_message_delivery(client_session, handler, _done(message))
                await self._handle_disconnect(client_session, handler, disconnect_waiter)
                break
    except asyncio.CancelledError:
        pass
    finally:
        waiters = [disconnect_waiter, subscribe_waiter, unsubscribe_waiter, wait_deliver]
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


_sending: set[asyncio.Future[Any]] = set()  # references, so running sends are not collected


def _log_failure(task: asyncio.Future[Any]) -> None:
    _sending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("delivery of a queued message failed: %r", task.exception())


def _spawn(coroutine: Any) -> None:
    task = asyncio.ensure_future(coroutine)
    _sending.add(task)
    task.add_done_callback(_log_failure)


def _send_backlog(handler: BrokerProtocolHandler, session: Session) -> None:
    """Resend what is in flight (DUP), then send what was queued while the session was away, in
    order, without waiting for PUBACKs (the in-flight set keeps each until its PUBACK)."""
    for packet_id, message in list(session.inflight_out.items()):
        if packet_id not in handler._puback_waiters:  # else sent on this connection already
            _spawn(handler._handle_message_flow(message))
    queue = session.retained_messages
    while not queue.empty():
        queued = queue.get_nowait()
        _spawn(handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=True))


async def _later(*_: Any, **__: Any) -> None:
    """In place of amqtt's sends at connection time: ``_send_backlog`` does them."""


def patch() -> None:
    BrokerProtocolHandler._handle_qos1_message_flow = _qos1_outgoing
    BrokerProtocolHandler.handle_puback = _puback
    Broker._client_message_loop = _client_message_loop
    Broker._publish_session_retained_messages = _later
    BrokerProtocolHandler._retry_deliveries = _later


def config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Sessions of consumers that stay away longer are dropped with their queued messages,
        # like Mosquitto's persistent_client_expiration in broker/mosquitto.conf.
        "session_expiry_interval": 7 * 86_400,
        "plugins": {f"{__name__}.OpenAuthPlugin": {}},
    }


async def serve(host: str, port: int) -> None:
    check_version()
    patch()
    broker = Broker(config(host, port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    log.info("amqtt %s listening on %s:%s (MQTT 3.1.1)", AMQTT_VERSION, host, port)
    await stop.wait()
    log.info("stopping")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(broker.shutdown(), 10)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m placewatch.embedded._amqtt_broker PORT [HOST]", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # amqtt logs every connection and packet problem at INFO or WARNING; keep its warnings.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    asyncio.run(serve(argv[1] if len(argv) == 2 else "127.0.0.1", int(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
