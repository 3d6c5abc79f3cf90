"""A client's connection over its life: attached, read, lost, reconnected, closed.

The connection's own state is one :class:`Link`, replaced whole on reconnection (nats.py's
way); what outlives a connection — subscriptions, gap tracking, awaited answers, the
backlog — is the client's. :class:`Client` is this plus the public API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .._backend import Sequences
from ..errors import ConnectionLost, EventBusError, Kicked, Timeout
from ..protocol import encode_frame
from ..v1 import frames_pb2
from ._inbound import Inbound
from ._link import Link, Opener
from ._reconnect import Backlog, Reconnect
from ._routes import Routes
from ._sequences import GapTracker
from ._subscription import Ended, Subscription

__all__ = ["Lifecycle", "subscribe_frame"]

log = logging.getLogger("eventbus.client")

_Frame = frames_pb2.Frame


class Lifecycle:
    """The connection machinery of a client (its attributes are set by ``Client``)."""

    reconnect: Reconnect
    reconnects: int
    instance_id: int
    _opener: Opener
    _principal: str
    _sequences: Sequences
    _client_name: str
    _timeout: float
    _link: Link
    _routes: Routes
    _gaps: GapTracker
    _inbound: Inbound
    _backlog: Backlog
    _inbox_id: int
    _closed: BaseException | None
    _closing: bool
    _connected: asyncio.Event
    _reconnecting: asyncio.Task[None] | None
    _keepalive: asyncio.Task[None] | None
    _reader: asyncio.Task[None]

    def _attach(self, link: Link) -> None:
        """Make ``link`` the current connection and start reading it."""
        self._link = link
        self._routes.follow(link.limits)
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop(link))
        interval = link.limits.heartbeat_interval_ms / 1000
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._keepalive = (
            loop.create_task(self._ping_loop(link, interval)) if interval > 0 else None
        )

    def _check_open(self) -> None:
        if self._closed is not None and not isinstance(self._closed, Ended):
            raise ConnectionLost(f"connection to the broker is closed: {self._closed}")
        if self._closed is not None or self._closing:
            raise ConnectionLost("client is closed")

    async def _wait_connected(self) -> None:
        while not self._connected.is_set():
            self._check_open()
            await self._connected.wait()
        self._check_open()

    async def _request(self, request_id: int, data: bytes, *, now: bool = False) -> Any:
        """Send a frame that expects an answer; ``now`` skips waiting for a reconnection."""
        if not now and not self._connected.is_set():
            await self._wait_connected()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inbound.requests[request_id] = future
        try:
            self._link.send(data)
            return await future
        finally:
            self._inbound.requests.pop(request_id, None)

    async def _ping_loop(self, link: Link, interval: float) -> None:
        ping = encode_frame(_Frame(ping=frames_pb2.Ping(nonce=0)))
        while True:
            await asyncio.sleep(interval)
            link.send(ping)

    async def _read_loop(self, link: Link) -> None:
        """Serve the connection's frames as they arrive, then act on how it ended."""
        stream = link.stream
        end: BaseException | None
        inbound = self._inbound
        inbound.stream = stream
        try:
            inbound.feed(link.pending)
        except BaseException as exc:
            end = exc
        else:
            stream.start(inbound.feed)
            end = await stream.wait()
        inbound.stop()
        error: BaseException | None
        if end is None:
            error = None if self._closing else ConnectionLost("the broker closed the connection")
        elif isinstance(end, Ended):
            error = None
        elif isinstance(end, EventBusError):
            error = None if self._closing else end
        else:
            log.error("client reader failed", exc_info=end)
            error = ConnectionLost(f"client reader failed: {end!r}")
        if link is not self._link:
            return
        if error is not None and self._may_reconnect(error):
            self._lost(error)
        else:
            self._shutdown(error)

    # -- losing and regaining the connection -------------------------------------------------

    def _may_reconnect(self, error: BaseException) -> bool:
        return (
            self.reconnect.enabled
            and not self._closing
            and isinstance(error, (ConnectionLost, Timeout))
            and not isinstance(error, Kicked)
        )

    def _lost(self, error: BaseException) -> None:
        """The connection broke: fail what waited on it, keep subscriptions, reconnect."""
        log.warning("lost the connection to the broker (%s); reconnecting", error)
        self._connected.clear()
        self._link.sender.publishing = False
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._link.discard()  # unsent frames: subscribers see the gap they leave
        self._link.conn.abort()
        self._inbound.fail(error)
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect(error))

    async def _reconnect(self, cause: BaseException) -> None:
        policy = self.reconnect
        try:
            for attempt, delay in enumerate(policy.delays(), 1):
                await asyncio.sleep(delay)
                try:
                    link = await Link.open(
                        self._opener,
                        principal=self._principal,
                        client_name=self._client_name,
                        instance_id=self.instance_id,
                        timeout=self._timeout,
                        sequences=self._sequences,
                    )
                except (ConnectionLost, Timeout, OSError) as exc:
                    log.debug("reconnection attempt %d failed: %s", attempt, exc)
                    cause = exc
                    continue
                except EventBusError as exc:  # refused by the broker: no point retrying
                    self._shutdown(exc)
                    return
                self._attach(link)
                self.reconnects += 1
                await self._restore()
                return
            self._shutdown(
                ConnectionLost(
                    f"gave up after {policy.max_attempts} reconnection attempts: {cause}"
                )
            )
        except asyncio.CancelledError:
            raise
        except EventBusError as exc:
            log.warning("reconnection interrupted: %s", exc)
        finally:
            # A loss during _restore has already started the next round: keep that one.
            if self._reconnecting is asyncio.current_task():
                self._reconnecting = None

    async def _restore(self) -> None:
        """Register the subscriptions again, then send what was published meanwhile."""
        subs = list(self._routes)
        requests = [
            self._request(sub.id, subscribe_frame(sub.id, sub.filter, sub.group), now=True)
            for sub in subs
        ]
        if self._inbox_id:
            requests.append(self._request(self._inbox_id, self._inbox_frame(), now=True))
        results = await asyncio.gather(*requests, return_exceptions=True)
        if any(isinstance(result, (ConnectionLost, Timeout)) for result in results):
            return  # lost again: the reader starts the next round
        for sub, result in zip(subs, results[: len(subs)], strict=True):
            if isinstance(result, BaseException):  # e.g. the policy no longer allows it
                self._drop_route(sub)
                sub._finish(result)
        link = self._link
        for data in self._backlog.take():
            link.send(data)
        self._connected.set()
        link.sender.publishing = True
        log.info("reconnected to the broker as connection %d", self._link.connection_id)

    def _shutdown(self, error: BaseException | None) -> None:
        if self._closed is not None:
            return
        self._closed = error if error is not None else Ended()
        self._link.sender.publishing = False
        self._connected.set()  # wake waiters so they see the end
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._reconnecting is not None and self._reconnecting is not asyncio.current_task():
            self._reconnecting.cancel()
        self._inbound.fail(error or ConnectionLost("client is closed"))
        for sub in self._routes.clear():
            sub._finish(error)
        self._backlog.abandon()
        if error is not None:
            self._link.discard()
            self._link.conn.abort()
        else:
            self._link.write_out()
            self._link.conn.close()

    def _drop_route(self, sub: Subscription) -> None:
        if self._routes.remove(sub):
            # What a subscription no longer receives cannot go missing meanwhile.
            self._gaps.forget(self._routes.receives)

    def _inbox_frame(self) -> bytes:
        return subscribe_frame(self._inbox_id, f"{self._link.inbox}+", "")


def subscribe_frame(sub_id: int, topic_filter: str, group: str) -> bytes:
    frame = _Frame(
        subscribe=frames_pb2.Subscribe(request_id=sub_id, filter=topic_filter, group=group)
    )
    return encode_frame(frame)
