"""The bridge's counters: one object, read by ``$SYS.bridge.stats``, the log and the
optional Prometheus endpoint (``--metrics HOST:PORT``, the text format, no dependency)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass

__all__ = ["BridgeStats", "serve_metrics"]

log = logging.getLogger("eventbus.bridge")


@dataclass
class BridgeStats:
    """Counters since the bridge started (``spool_*`` and ``nats_connected`` are gauges)."""

    #: Local events taken from the bus to forward.
    received: int = 0
    #: Of those, written to the spool.
    spooled: int = 0
    #: Of those, refused because the spool was full: never forwarded.
    overflow: int = 0
    #: Acknowledged by JetStream as stored.
    published: int = 0
    #: Acknowledged by JetStream as a duplicate of a stored message (a resend after a lost ack).
    duplicates: int = 0
    #: Publishes to JetStream that failed and were tried again.
    retries: int = 0
    #: Events JetStream refused for good (too large...): logged, never forwarded.
    rejected: int = 0
    #: Events the local broker reported dropped for the bridge, or lost in transit.
    local_dropped: int = 0
    local_lost: int = 0
    #: Control messages republished into the local bus, refused there, or skipped because
    #: a bridge had forwarded them up (a heartbeat, not the center's control).
    control_delivered: int = 0
    control_rejected: int = 0
    control_skipped: int = 0
    #: Records found damaged in the spool when it was opened.
    spool_damaged: int = 0
    spool_pending: int = 0
    spool_bytes: int = 0
    nats_connected: int = 0
    nats_reconnects: int = 0

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def to_json(self, **extra: object) -> bytes:
        return json.dumps({**extra, **self.snapshot()}, sort_keys=True).encode()

    def prometheus(self, host_id: str) -> str:
        """The counters in the Prometheus text format, labelled with the host id."""
        lines = []
        for name, value in self.snapshot().items():
            gauge = name in ("spool_pending", "spool_bytes", "nats_connected")
            metric = f"eventbus_bridge_{name}" + ("" if gauge else "_total")
            lines.append(f"# TYPE {metric} {'gauge' if gauge else 'counter'}")
            lines.append(f'{metric}{{host="{host_id}"}} {value}')
        return "\n".join(lines) + "\n"


async def serve_metrics(stats: BridgeStats, host_id: str, where: str) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``HOST:PORT`` (meant for loopback)."""
    host, _, port = where.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path.split(b"?")[0] in (b"/metrics", b"/"):
                body = stats.prometheus(host_id).encode()
                status = b"200 OK"
            else:
                body, status = b"not found\n", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host.strip("[]"), int(port))
    log.info("metrics on http://%s/metrics", where)
    return server
