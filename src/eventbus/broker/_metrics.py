"""The Prometheus endpoint: broker state read at scrape time, in the text format.

Needs the ``metrics`` extra (``prometheus-client``). The HTTP server runs in a thread of
its own; each scrape asks the broker's event loop for a snapshot, so the counters are read
where they are written and nothing is added to the per-message path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._accounting import PrincipalUsage
from .config import metrics_endpoint

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["BrokerSnapshot", "MetricsServer"]

# A scrape waits this long for the event loop before it answers with what it has.
_SNAPSHOT_TIMEOUT = 5.0


@dataclass
class BrokerSnapshot:
    """What one scrape reports."""

    principals: dict[str, PrincipalUsage]
    messages_in: int
    messages_out: int
    dropped: int
    queued_bytes: int
    publishers_paused: bool


# (metric name, PrincipalUsage field, help, kind)
_PER_PRINCIPAL = (
    ("eventbus_clients", "clients", "Connections open now", "gauge"),
    ("eventbus_subscriptions", "subscriptions", "Subscriptions held now", "gauge"),
    ("eventbus_queue_bytes", "queued_bytes", "Outbound bytes queued now", "gauge"),
    ("eventbus_connections", "connections", "Connections admitted", "counter"),
    ("eventbus_messages_in", "frames_in", "Frames received (publishes and requests)", "counter"),
    ("eventbus_messages_out", "messages_out", "Events delivered", "counter"),
    ("eventbus_bytes_in", "bytes_in", "Bytes received", "counter"),
    ("eventbus_bytes_out", "bytes_out", "Bytes sent", "counter"),
    ("eventbus_dropped", "dropped", "Events dropped for a full outbound buffer", "counter"),
    ("eventbus_denied", "denied", "Operations the policy refused", "counter"),
)


class _Collector:
    """A custom collector (``prometheus_client.registry.Collector``) over the broker."""

    def __init__(self, snapshot: Callable[[], BrokerSnapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._snapshot()
        if snap is None:
            return
        for name, field, text, kind in _PER_PRINCIPAL:
            family_type = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
            family = family_type(name, f"{text}, per principal", labels=["principal"])
            for principal, usage in sorted(snap.principals.items()):
                family.add_metric([principal], getattr(usage, field))
            yield family
        broker = (
            ("eventbus_broker_messages_in", snap.messages_in, "Events accepted from publishers"),
            ("eventbus_broker_messages_out", snap.messages_out, "Events delivered"),
            ("eventbus_broker_dropped", snap.dropped, "Deliveries dropped"),
        )
        for name, value, text in broker:
            yield CounterMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "eventbus_broker_queue_bytes", "Outbound bytes queued now", value=snap.queued_bytes
        )
        yield GaugeMetricFamily(
            "eventbus_broker_publishers_paused",
            "1 while reading from publishers is paused for the memory budget",
            value=int(snap.publishers_paused),
        )


class MetricsServer:
    """Serves ``/metrics`` on ``HOST:PORT`` for as long as the broker runs."""

    def __init__(
        self, address: str, snapshot: Callable[[], BrokerSnapshot], *, allow_remote: bool
    ) -> None:
        self._host, self._port = metrics_endpoint(address, allow_remote=allow_remote)
        self._take = snapshot
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        name = str(host)
        return f"http://{f'[{name}]' if ':' in name else name}:{port}/metrics"

    def start(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise ConfigError(
                "--metrics needs prometheus-client: pip install 'daemoneye-eventbus[metrics]'"
            ) from None
        self._loop = asyncio.get_running_loop()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._snapshot))
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=registry
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {self._host}:{self._port}: {exc.strerror or exc}"
            ) from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _snapshot(self) -> BrokerSnapshot | None:
        """Called in the HTTP thread: the snapshot is taken on the broker's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return None

        async def take() -> BrokerSnapshot:
            return self._take()

        try:
            return asyncio.run_coroutine_threadsafe(take(), loop).result(_SNAPSHOT_TIMEOUT)
        except Exception:
            return None
