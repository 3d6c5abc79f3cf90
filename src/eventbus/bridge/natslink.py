"""The bridge's NATS connection: to any member of the cluster, kept up by nats-py, and
the stream made sure of after every (re)connection."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from .config import BridgeConfig
from .stats import BridgeStats
from .subjects import ROOT

__all__ = ["NatsLink"]

log = logging.getLogger("eventbus.bridge")


class NatsLink:
    """Connects (retrying while no server answers), then leaves reconnection to nats-py,
    which tries every server of the list and those the cluster announces."""

    def __init__(self, config: BridgeConfig, stats: BridgeStats) -> None:
        self._config = config
        self._stats = stats
        self.nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._up = asyncio.Event()
        self._stream_ok = False

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None
        return self._js

    async def wait_up(self) -> JetStreamContext:
        """The JetStream context, once connected and the stream exists."""
        while True:
            await self._up.wait()
            if self._stream_ok:
                return self.js
            await self.ensure_stream()

    def _set_down(self) -> None:
        self._up.clear()
        self._stats.nats_connected = 0

    async def run(self) -> None:
        config = self._config
        delay = 0.2

        async def disconnected() -> None:
            self._set_down()
            log.warning("NATS connection lost; spooling until it is back")

        async def reconnected() -> None:
            self._stats.nats_reconnects += 1
            url = self.nc.connected_url.netloc if self.nc and self.nc.connected_url else "?"
            log.warning("NATS reconnected to %s", url)
            self._stream_ok = False
            self._stats.nats_connected = 1
            self._up.set()

        async def error(exc: Exception) -> None:
            log.debug("NATS: %s", exc)

        while self.nc is None:
            try:
                self.nc = await nats.connect(
                    servers=config.nats,
                    name=f"daemoneye-bridge[{config.host_id}]",
                    user_credentials=config.credentials,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                )
            except Exception as exc:
                log.warning("no NATS server answers (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._js = self.nc.jetstream(timeout=config.ack_timeout)
        self._stats.nats_connected = 1
        url = self.nc.connected_url
        log.info("NATS connected to %s", url.netloc if url else "?")
        self._up.set()
        await self.ensure_stream()

    async def ensure_stream(self) -> None:
        """Create the stream if it does not exist; an existing one is left as it is."""
        if self._stream_ok:
            return
        config = self._config
        delay = 0.1
        while not self._stream_ok:
            await self._up.wait()
            try:
                try:
                    await self.js.stream_info(config.stream)
                except NotFoundError:
                    await self.js.add_stream(
                        StreamConfig(
                            name=config.stream,
                            subjects=[f"{ROOT}.>"],
                            storage=StorageType.FILE,
                            num_replicas=config.replicas,
                            duplicate_window=config.duplicate_window,
                        )
                    )
                    log.info("created stream %s (R%d)", config.stream, config.replicas)
                self._stream_ok = True
            except Exception as exc:
                # JetStream not ready yet (no leader after a restart...): try again.
                log.debug("stream %s not available yet: %r", config.stream, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def stream_lost(self) -> None:
        """A publish found no stream: look (or create) again before the next one."""
        self._stream_ok = False

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.close(), 5.0)
            except Exception as exc:  # closing is best effort: the spool keeps the rest
                log.debug("NATS close: %r", exc)
