"""Up: local events into the spool, and from the spool to JetStream, in order per publisher.

Every event goes through the spool, connected or not: one path, so an outage, a restart
of the bridge and normal running differ only in how much is waiting. A sender reads the
spool in order into one **lane** per local publisher (its client instance id); a lane has
one publish in flight at a time and moves on only when JetStream acknowledged it, so a
retry can never put a publisher's events out of order in the stream, while the lanes of
different publishers proceed side by side. The spool is committed up to the first record
not yet acknowledged.

Each message carries ``Nats-Msg-Id`` (host id, publisher instance id, sequence, topic:
sequences are per topic, docs/broker.md#sequences), so a resend after a lost ack is dropped
by JetStream as a duplicate, and the publisher as the local broker verified it, in
``Eventbus-*`` headers (docs/fleet.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from nats.errors import MaxPayloadError
from nats.js.errors import BadRequestError, NotFoundError

from ..client import Envelope
from ..v1 import frames_pb2
from .natslink import NatsLink
from .spool import Spool
from .stats import BridgeStats
from .subjects import topic_to_subject

__all__ = ["HOST_HEADER", "Uplink", "headers_for"]

log = logging.getLogger("eventbus.bridge")

#: Set on every message a bridge forwards up: the down-link skips such messages, so what a
#: host sends up on ``control.health.*`` never comes back down as control.
HOST_HEADER = "Eventbus-Host"

# Records read ahead of the acknowledgements (in memory, across all lanes).
_READ_AHEAD = 1024
# How often the committed offset is written (fsync), at most.
_COMMIT_EVERY = 0.1


def _clean(value: str) -> str:
    """A header value cannot hold CR/LF: a client name is the client's claim, not trusted."""
    return "".join(c if c.isprintable() else "?" for c in value)


def headers_for(
    host_id: str, record: int, spool_id: str, event: frames_pb2.EventEnvelope
) -> dict[str, str]:
    """The headers of one forwarded event."""
    who = event.publisher
    if who.instance_id and who.sequence:
        msg_id = f"{host_id}:{who.instance_id:016x}:{who.sequence}:{event.topic}"
    else:  # not numbered by its publisher: numbered by this spool instead
        msg_id = f"{host_id}:spool-{spool_id}:{record}"
    headers = {
        "Nats-Msg-Id": msg_id,
        HOST_HEADER: host_id,
        "Eventbus-Topic": event.topic,
        "Eventbus-Timestamp-Ns": str(event.timestamp_ns),
        "Eventbus-Principal": who.principal,
        "Eventbus-Pid": str(who.pid),
        "Eventbus-Uid": str(who.uid),
        "Eventbus-Gid": str(who.gid),
        "Eventbus-Connection": str(who.connection_id),
        "Eventbus-Client-Name": _clean(who.client_name),
        "Eventbus-Instance": f"{who.instance_id:016x}",
        "Eventbus-Sequence": str(who.sequence),
    }
    if event.HasField("correlation") and event.correlation.correlation_id:
        headers["Eventbus-Correlation-Id"] = _clean(event.correlation.correlation_id)
    return headers


class Uplink:
    """Takes local envelopes into the spool, and sends the spool to JetStream."""

    def __init__(
        self,
        spool: Spool,
        nats: NatsLink,
        stats: BridgeStats,
        *,
        host_id: str,
        stream: str,
        ack_timeout: float,
        spool_id: str,
    ) -> None:
        self._spool = spool
        self._nats = nats
        self._stats = stats
        self._host_id = host_id
        self._stream = stream
        self._ack_timeout = ack_timeout
        self._spool_id = spool_id
        self._lanes: dict[int, deque[tuple[int, frames_pb2.EventEnvelope]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: set[int] = set()
        self._commit_point = spool.committed
        self._in_flight = 0
        self._space = asyncio.Event()
        self._overflow_logged = 0.0
        #: Set whenever ``stats.overflow`` grows (the bridge reports it on $SYS.bridge).
        self.overflowed = asyncio.Event()

    # -- into the spool ---------------------------------------------------------------------

    def take(self, envelope: Envelope) -> None:
        """Spool one local event (or count it as overflow when the spool is full)."""
        stats = self._stats
        stats.received += 1
        if self._spool.append(envelope.raw.SerializeToString()) is None:
            stats.overflow += 1
            self.overflowed.set()
            now = time.monotonic()
            if now - self._overflow_logged >= 1.0:  # every loss counted, logged once a second
                self._overflow_logged = now
                log.error(
                    "spool full (%d bytes): event on %r dropped, %d dropped in all",
                    self._spool.size_bytes,
                    envelope.topic,
                    stats.overflow,
                )
        else:
            stats.spooled += 1

    # -- out of the spool -------------------------------------------------------------------

    async def run(self) -> None:
        committer = asyncio.ensure_future(self._commit_loop())
        try:
            while True:
                while self._in_flight >= _READ_AHEAD:
                    self._space.clear()
                    await self._space.wait()
                for number, body in await self._spool.read(_READ_AHEAD - self._in_flight):
                    event = frames_pb2.EventEnvelope.FromString(body)
                    key = event.publisher.instance_id
                    lane = self._lanes.get(key)
                    self._in_flight += 1
                    if lane is None:
                        lane = self._lanes[key] = deque()
                        lane.append((number, event))
                        task = asyncio.ensure_future(self._drive(key, lane))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    else:
                        lane.append((number, event))
        finally:
            committer.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(committer, *self._tasks, return_exceptions=True)
            self.commit()

    async def _drive(self, key: int, lane: deque[tuple[int, frames_pb2.EventEnvelope]]) -> None:
        while lane:
            number, event = lane[0]
            await self._send(number, event)
            lane.popleft()
            self._finished(number)
        del self._lanes[key]

    async def _send(self, number: int, event: frames_pb2.EventEnvelope) -> None:
        """Publish until JetStream acknowledges it, or refuses it for good."""
        subject = topic_to_subject(self._host_id, event.topic)
        headers = headers_for(self._host_id, number, self._spool_id, event)
        delay = 0.05
        while True:
            js = await self._nats.wait_up()
            try:
                ack = await js.publish(
                    subject,
                    event.payload,
                    timeout=self._ack_timeout,
                    stream=self._stream,
                    headers=headers,
                )
            except (MaxPayloadError, BadRequestError) as exc:
                self._stats.rejected += 1
                log.error("JetStream refused the event on %r for good: %s", event.topic, exc)
                return
            except NotFoundError:
                self._nats.stream_lost()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no ack (timeout, no leader, connection lost): again
                log.debug("publish of record %d failed (%r); retrying", number, exc)
            else:
                if ack.duplicate:
                    self._stats.duplicates += 1
                else:
                    self._stats.published += 1
                return
            self._stats.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _finished(self, number: int) -> None:
        self._in_flight -= 1
        self._space.set()
        done = self._done
        done.add(number)
        point = self._commit_point
        while point in done:
            done.discard(point)
            point += 1
        self._commit_point = point

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(_COMMIT_EVERY)
            self.commit()

    def commit(self) -> None:
        """Persist the offset of the first record not yet acknowledged."""
        try:
            self._spool.commit(self._commit_point)
        except OSError as exc:  # resent after a restart if it stays unwritten: duplicates only
            log.error("cannot write the spool's committed offset: %s", exc)
        self._stats.spool_pending = self._spool.pending
        self._stats.spool_bytes = self._spool.size_bytes
