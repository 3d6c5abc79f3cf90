"""Broker settings: limits, deadlines and policies, with the defaults of the design."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from .._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS
from ..acl import Policy
from ..errors import ConfigError
from ..protocol import DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT

__all__ = ["BrokerConfig", "metrics_endpoint"]

# Names that always resolve to the loopback interface.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def metrics_endpoint(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; a bare ``PORT`` means 127.0.0.1; port 0: any
    free one) as a pair.

    Raises :class:`~eventbus.errors.ConfigError` for a malformed one, and for a host that is
    not loopback unless ``allow_remote``: the endpoint has no authentication, and the
    counters name every principal.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536 or not host:
        raise ConfigError(
            f"metrics address {text!r} is not HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:9464)"
        )
    if not allow_remote and not _is_loopback(host):
        raise ConfigError(
            f"metrics address {text!r} is not a loopback address: the endpoint has no "
            "authentication; use 127.0.0.1 or ::1, or allow it explicitly "
            "(--metrics-allow-remote, metrics_allow_remote = true)"
        )
    return host, int(port_text)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it could resolve anywhere


@dataclass
class BrokerConfig:
    """Everything a broker can be told. The defaults are the embedded defaults."""

    #: Socket path or pipe name; ``None`` means :func:`eventbus.transport.default_address`.
    address: str | None = None
    #: Access-control policy; ``None`` means the embedded default policy.
    policy: Policy | None = None
    #: Group allowed to reach the socket (directory 0750, socket 0660); ``None``: owner only.
    socket_group: int | str | None = None
    name: str = "daemoneye-eventbus"
    max_frame_bytes: int = DEFAULT_MAX_FRAME
    max_topic_bytes: int = DEFAULT_MAX_BYTES
    max_topic_levels: int = DEFAULT_MAX_LEVELS
    #: Bytes a subscriber may have queued before its newest events are dropped.
    max_outbound_bytes: int = 8 << 20
    #: What happens to a subscriber over its outbound limit.
    slow_consumer: Literal["drop", "disconnect"] = "drop"
    #: Total queued bytes over all connections before reading pauses, then sheds.
    memory_budget_bytes: int = 256 << 20
    #: Longest pause of reading while buffers drain, before the heaviest are shed.
    budget_pause: float = 1.0
    #: Longest a publisher's reading is held while a subscriber it feeds, over half its
    #: outbound limit, drains; then that subscriber takes its drops. 0: never held.
    publisher_pause: float = 1.0
    #: Queued bytes all connections of one uid may hold before the heaviest are shed.
    max_outbound_bytes_per_uid: int = 128 << 20
    max_connections_per_uid: int = 256
    max_subscriptions_per_uid: int = 100_000
    max_subscriptions_per_connection: int = 10_000
    hello_timeout: float = 5.0
    #: Clients ping at this interval; a connection silent for three intervals is closed.
    heartbeat_interval: float = 5.0
    #: Seconds between ``$SYS.broker.stats`` events; 0 turns them off.
    stats_interval: float = 10.0
    #: Seconds a stopping broker waits for outbound buffers to drain.
    drain_timeout: float = 5.0
    #: ``HOST:PORT`` of the Prometheus endpoint (needs the ``metrics`` extra); ``None``: off.
    metrics: str | None = None
    #: Let ``metrics`` listen on a non-loopback address.
    metrics_allow_remote: bool = False
    #: A listening Unix socket to serve instead of binding ``address`` (socket activation).
    listen_fd: int | None = None

    def __post_init__(self) -> None:
        """Refuse a setting out of range with a :class:`~eventbus.errors.ConfigError`."""
        for name in (
            "max_frame_bytes",
            "max_topic_bytes",
            "max_topic_levels",
            "max_outbound_bytes",
            "memory_budget_bytes",
            "max_outbound_bytes_per_uid",
            "max_connections_per_uid",
            "max_subscriptions_per_uid",
            "max_subscriptions_per_connection",
            "hello_timeout",
            "heartbeat_interval",
        ):
            if getattr(self, name) <= 0:
                raise self._error(name, "must be positive")
        if self.max_frame_bytes > MAX_FRAME_LIMIT:
            raise self._error(
                "max_frame_bytes", f"must fit the 4-byte length prefix (at most {MAX_FRAME_LIMIT})"
            )
        if self.slow_consumer not in ("drop", "disconnect"):
            raise self._error("slow_consumer", "must be 'drop' or 'disconnect'")
        for name in ("budget_pause", "publisher_pause"):
            if getattr(self, name) < 0:
                raise self._error(name, "must not be negative")
        if self.stats_interval < 0:
            raise self._error("stats_interval", "must not be negative (0 turns stats off)")
        if self.metrics is not None:
            try:
                metrics_endpoint(self.metrics, allow_remote=self.metrics_allow_remote)
            except ConfigError as exc:
                raise ConfigError(f"BrokerConfig.metrics: {exc}") from None

    def _error(self, name: str, rule: str) -> ConfigError:
        return ConfigError(f"BrokerConfig.{name} {rule}, not {getattr(self, name)!r}")
