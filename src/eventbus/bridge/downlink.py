"""Down: control from the center into the local bus.

A durable JetStream consumer (``bridge-<host id>`` unless configured) on
``daemoneye.<host id>.control.>`` and ``daemoneye.all.control.>``. Each message is
published into the local bus as ``bridge`` with a confirmed publish and acknowledged to
JetStream only once the local broker has accepted it; the local policy then decides who
receives it, as for any control message. A message the local broker refuses (not a valid
topic, outside the bridge's rights) is terminated and counted, never retried for ever; one
that could not be handed over (the broker is down) is redelivered later.

Messages that a bridge forwarded up (they carry ``Eventbus-Host``: a host's heartbeats on
``daemoneye.<host>.control.health.*``) are acknowledged and skipped: they are a host's
reports, not the center's control, and bringing them down would loop.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ..client import Client
from ..errors import ConnectionLost, EventBusError, Timeout
from ..v1 import frames_pb2
from .config import BridgeConfig
from .natslink import NatsLink
from .stats import BridgeStats
from .subjects import BROADCAST, ROOT, subject_to_topic
from .uplink import HOST_HEADER

__all__ = ["Downlink"]

log = logging.getLogger("eventbus.bridge")

_BATCH = 64


class Downlink:
    """Pulls the host's control messages and republishes them locally, in order."""

    def __init__(
        self, client: Client, nats: NatsLink, stats: BridgeStats, config: BridgeConfig
    ) -> None:
        self._client = client
        self._nats = nats
        self._stats = stats
        self._config = config
        self._hosts = (config.host_id, BROADCAST)
        #: Set once the consumer exists and is bound (control sent from then on arrives).
        self.bound = asyncio.Event()

    @property
    def subjects(self) -> list[str]:
        return [f"{ROOT}.{host}.control.>" for host in self._hosts]

    async def run(self) -> None:
        while True:
            js = await self._nats.wait_up()
            config = self._config
            try:
                try:
                    await js.consumer_info(config.stream, config.durable_name)
                except NotFoundError:
                    # From now on: a host that joins does not replay old broadcast control.
                    await js.add_consumer(
                        config.stream,
                        ConsumerConfig(
                            durable_name=config.durable_name,
                            filter_subjects=self.subjects,
                            ack_policy=AckPolicy.EXPLICIT,
                            deliver_policy=DeliverPolicy.NEW,
                            ack_wait=30.0,
                            max_ack_pending=1000,
                        ),
                    )
                sub = await js.pull_subscribe_bind(
                    durable=config.durable_name, stream=config.stream
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("control consumer not available yet: %r", exc)
                await asyncio.sleep(0.5)
                continue
            if not self.bound.is_set():
                log.info("control consumer %s bound on %s", config.durable_name, self.subjects)
                self.bound.set()
            try:
                await self._pull(sub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("control consumer failed (%r); binding again", exc)
                await asyncio.sleep(0.5)
            finally:
                try:
                    await sub.unsubscribe()
                except Exception as exc:
                    log.debug("unsubscribe: %r", exc)

    async def _pull(self, sub: JetStreamContext.PullSubscription) -> None:
        fetch = sub.fetch
        failures = 0
        while True:
            try:
                messages = await fetch(_BATCH, timeout=1.0)
            except asyncio.TimeoutError:  # nothing to fetch (nats-py raises it bare or its own)
                failures = 0
                continue
            except Exception:
                failures += 1
                if failures > 5:
                    raise
                await self._nats.wait_up()
                await asyncio.sleep(0.2)
                continue
            failures = 0
            for message in messages:
                await self._deliver(message)

    async def _deliver(self, msg: Msg) -> None:
        headers = msg.headers or {}
        stats = self._stats
        if HOST_HEADER in headers:
            stats.control_skipped += 1
            await msg.ack()
            return
        subject = msg.subject
        topic = subject_to_topic(subject, self._hosts)
        if topic is None:
            return await self._refuse(msg, subject, "not a valid bus topic")
        correlation = None
        if "Eventbus-Correlation-Id" in headers:
            correlation = frames_pb2.CorrelationMetadata(
                correlation_id=headers["Eventbus-Correlation-Id"]
            )
        while True:
            try:
                await self._client.publish(topic, msg.data, correlation=correlation, confirm=True)
            except (ConnectionLost, Timeout) as exc:
                # Not handed over: the local broker is away. Wait for it, then again.
                log.warning("control on %r not delivered locally yet: %s", topic, exc)
                await asyncio.sleep(0.2)
                continue
            except EventBusError as exc:
                return await self._refuse(msg, subject, str(exc))
            break
        await msg.ack()
        stats.control_delivered += 1

    async def _refuse(self, msg: Msg, subject: str, why: str) -> None:
        self._stats.control_rejected += 1
        log.error("control message on %r refused: %s", subject, why)
        await msg.term()
