"""The bridge as one object: the local client, the spool, NATS, and the tasks between them.

``python -m eventbus.bridge`` builds a :class:`Bridge` from its config and runs it until
SIGINT/SIGTERM; it can also run inside another program's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from .. import client as bus
from ..v1 import frames_pb2
from .config import BridgeConfig
from .downlink import Downlink
from .natslink import NatsLink
from .spool import Spool
from .stats import BridgeStats, serve_metrics
from .uplink import Uplink

__all__ = ["OVERFLOW_TOPIC", "STATS_TOPIC", "Bridge"]

log = logging.getLogger("eventbus.bridge")

#: Every ``stats_interval`` seconds: every counter of :class:`BridgeStats`, and the host id.
STATS_TOPIC = "$SYS.bridge.stats"
#: As soon as the spool refuses events (at most twice a second): how many, and in all.
OVERFLOW_TOPIC = "$SYS.bridge.overflow"

_OVERFLOW_COALESCE = 0.5


class Bridge:
    """One host's bridge between its local bus and a NATS JetStream cluster."""

    def __init__(self, config: BridgeConfig, *, say: Callable[[str], None] | None = None) -> None:
        self.config = config.validate()
        self.stats = BridgeStats()
        self._say = say or (lambda line: None)
        self.spool = Spool(
            config.spool_path,
            max_bytes=config.spool_max_bytes,
            segment_bytes=min(config.spool_segment_bytes, config.spool_max_bytes),
        )
        self.nats = NatsLink(config, self.stats)
        self.client: bus.Client | None = None
        self.uplink: Uplink | None = None
        self.downlink: Downlink | None = None

    def _dropped(self, count: int) -> None:
        self.stats.local_dropped += count

    def _lost(self, _publisher: frames_pb2.ProcessIdentity, count: int) -> None:
        self.stats.local_lost += count

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set or the local broker refuses the bridge for good."""
        config = self.config
        self.spool.open()
        self.stats.spool_damaged = self.spool.damaged
        client = self.client = await bus.connect(
            config.address,
            principal="bridge",
            client_name=f"bridge[{config.host_id}]",
            on_dropped=self._dropped,
            on_lost=self._lost,
        )
        self.uplink = Uplink(
            self.spool,
            self.nats,
            self.stats,
            host_id=config.host_id,
            stream=config.stream,
            ack_timeout=config.ack_timeout,
            spool_id=self.spool.identity,
        )
        self.downlink = Downlink(client, self.nats, self.stats, config)
        subs = [await client.subscribe(topic_filter) for topic_filter in config.up]
        self.uplink.commit()
        self._say(
            f"bridge ready host={config.host_id} spool={self.spool.directory} "
            f"pending={self.spool.pending}"
        )
        metrics = None
        if config.metrics:
            metrics = await serve_metrics(self.stats, config.host_id, config.metrics)
        collectors = [asyncio.ensure_future(self._collect(sub)) for sub in subs]
        # These run until cancelled; one that ends early has failed and stops the bridge.
        endless = [
            asyncio.ensure_future(self.uplink.run()),
            asyncio.ensure_future(self.downlink.run()),
            asyncio.ensure_future(self._report_overflow()),
        ]
        workers = [
            *endless,
            asyncio.ensure_future(self.nats.run()),
            asyncio.ensure_future(self._report_stats()),
            asyncio.ensure_future(self._announce()),
        ]
        closed = asyncio.ensure_future(client.wait_closed())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({closed, stopping, *endless}, return_when=asyncio.FIRST_COMPLETED)
            for task in endless:
                error = task.exception() if task.done() and not task.cancelled() else None
                if error is not None:
                    raise error
            if closed.done():
                log.error("the local broker ended the bridge's connection: %s", closed.result())
        finally:
            # Stop taking first, then let the sender commit what was acknowledged.
            for collector in collectors:
                collector.cancel()
            stopping.cancel()
            closed.cancel()
            await asyncio.gather(*collectors, return_exceptions=True)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, stopping, closed, return_exceptions=True)
            if metrics is not None:
                metrics.close()
            await self.nats.close()
            with contextlib.suppress(Exception):
                await client.close()
            self.spool.close()

    async def _collect(self, sub: bus.Subscription) -> None:
        assert self.client is not None and self.uplink is not None
        me, take = self.client, self.uplink.take
        async for envelope in sub:
            who = envelope.publisher
            # What this bridge brought down from the center does not go back up.
            if who.instance_id == me.instance_id and who.principal == me.principal:
                continue
            take(envelope)

    async def _announce(self) -> None:
        assert self.downlink is not None
        await self.nats.wait_up()
        self._say("bridge nats-up")
        await self.downlink.bound.wait()
        self._say("bridge control-bound")

    def _refresh(self) -> None:
        self.stats.spool_pending = self.spool.pending
        self.stats.spool_bytes = self.spool.size_bytes

    async def _report_stats(self) -> None:
        assert self.client is not None
        interval = self.config.stats_interval
        if not interval:
            return
        while True:
            await asyncio.sleep(interval)
            self._refresh()
            await self.client.publish(STATS_TOPIC, self.stats.to_json(host=self.config.host_id))

    async def _report_overflow(self) -> None:
        assert self.client is not None and self.uplink is not None
        reported = 0
        while True:
            await self.uplink.overflowed.wait()
            self.uplink.overflowed.clear()
            total = self.stats.overflow
            body = {"host": self.config.host_id, "dropped": total - reported, "total": total}
            reported = total
            await self.client.publish(OVERFLOW_TOPIC, json.dumps(body).encode())
            await asyncio.sleep(_OVERFLOW_COALESCE)
