"""The bridge's settings: ``bridge.toml``, then command-line flags over it.

```toml
[bridge]
address = "/run/daemoneye/eventbus.sock"   # the local broker (default: the bus default)
host_id = "web-1"                          # default: the host name
stats_interval = 5.0                       # seconds between $SYS.bridge.stats
metrics = "127.0.0.1:9465"                 # Prometheus text endpoint (default: off)

[nats]
servers = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
credentials = "/etc/daemoneye/bridge.creds"   # NATS user credentials file (optional)
stream = "DAEMONEYE"                       # JetStream stream, created if absent
replicas = 3
duplicate_window = 600.0                   # seconds JetStream remembers a Nats-Msg-Id
ack_timeout = 5.0                          # seconds to wait for a publish ack
durable = "bridge-web-1"                   # the control consumer (default: bridge-<host id>)

[topics]
up = ["events.#", "control.health.#", "$SYS.client.#"]   # local filters forwarded up

[spool]
dir = "/var/lib/daemoneye/bridge"          # default: $STATE_DIRECTORY, else ~/.local/state/...
max_bytes = 67108864                       # bound of the on-disk queue
segment_bytes = 4194304
```
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._grammar import validate_filter
from ..errors import ConfigError
from .subjects import check_host_id

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["DEFAULT_UP", "BridgeConfig", "default_spool_dir"]

#: What the bridge forwards when the config names nothing: every event, the collectors'
#: health and the broker's presence reports.
DEFAULT_UP = ("events.#", "control.health.#", "$SYS.client.#")


def default_spool_dir(host_id: str) -> str:
    """``$STATE_DIRECTORY`` (systemd's StateDirectory=), else ``$XDG_STATE_HOME`` or
    ``~/.local/state``, under ``daemoneye/bridge-<host id>``."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return os.path.join(state.split(":")[0], f"bridge-{host_id}")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "daemoneye", f"bridge-{host_id}")


@dataclass
class BridgeConfig:
    """Everything the bridge needs; :meth:`load` reads it from TOML."""

    address: str | None = None
    nats: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    host_id: str = field(default_factory=socket.gethostname)
    credentials: str | None = None
    stream: str = "DAEMONEYE"
    replicas: int = 1
    duplicate_window: float = 600.0
    ack_timeout: float = 5.0
    durable: str | None = None
    up: tuple[str, ...] = DEFAULT_UP
    spool_dir: str | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    spool_segment_bytes: int = 4 * 1024 * 1024
    stats_interval: float = 5.0
    metrics: str | None = None

    def validate(self) -> BridgeConfig:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        try:
            check_host_id(self.host_id)
        except ValueError as exc:
            raise ConfigError(f"host_id: {exc}") from None
        if not self.nats:
            raise ConfigError("nats: at least one server URL is needed")
        for url in self.nats:
            if not url.startswith(("nats://", "tls://")):
                raise ConfigError(f"nats: {url!r} is not a nats:// or tls:// URL")
        for name in ("replicas", "spool_max_bytes", "spool_segment_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        for name in ("duplicate_window", "ack_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.stats_interval < 0:
            raise ConfigError(f"stats_interval must be >= 0, not {self.stats_interval}")
        if not self.stream or any(c in self.stream for c in ".*> \t"):
            raise ConfigError(f"stream: {self.stream!r} is not a valid JetStream stream name")
        for topic_filter in self.up:
            try:
                validate_filter(topic_filter)
            except ValueError as exc:
                raise ConfigError(f"topics.up: {exc}") from None
        if self.metrics is not None:
            host, _, port = self.metrics.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"metrics: {self.metrics!r} is not HOST:PORT")
        return self

    @property
    def durable_name(self) -> str:
        return self.durable or f"bridge-{self.host_id}"

    @property
    def spool_path(self) -> str:
        return self.spool_dir or default_spool_dir(self.host_id)

    @classmethod
    def load(cls, path: str) -> BridgeConfig:
        """Read ``path`` (TOML, the layout in this module's docstring); unknown keys are
        errors, so a typo never silently falls back to a default."""
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return cls.from_mapping(data, source=path)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<config>") -> BridgeConfig:
        values: dict[str, Any] = {}
        for table, keys in _KEYS.items():
            body = data.get(table, {})
            if not isinstance(body, Mapping):
                raise ConfigError(f"{source}: [{table}] must be a table")
            for key, value in body.items():
                if key not in keys:
                    raise ConfigError(f"{source}: unknown key {key!r} in [{table}]")
                name, kind = keys[key]
                if kind is tuple or kind is list:
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise ConfigError(f"{source}: [{table}] {key} must be a list of strings")
                    value = kind(value)
                elif kind is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                elif not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
                    raise ConfigError(
                        f"{source}: [{table}] {key} must be {kind.__name__}, "
                        f"not {type(value).__name__}"
                    )
                values[name] = value
        for table in data:
            if table not in _KEYS:
                raise ConfigError(f"{source}: unknown table [{table}]")
        return cls(**values)

    def replace(self, **changes: Any) -> BridgeConfig:
        """A copy with ``changes`` (those that are None are left out: unset flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


_KEYS: dict[str, dict[str, tuple[str, type]]] = {
    "bridge": {
        "address": ("address", str),
        "host_id": ("host_id", str),
        "stats_interval": ("stats_interval", float),
        "metrics": ("metrics", str),
    },
    "nats": {
        "servers": ("nats", list),
        "credentials": ("credentials", str),
        "stream": ("stream", str),
        "replicas": ("replicas", int),
        "duplicate_window": ("duplicate_window", float),
        "ack_timeout": ("ack_timeout", float),
        "durable": ("durable", str),
    },
    "topics": {"up": ("up", tuple)},
    "spool": {
        "dir": ("spool_dir", str),
        "max_bytes": ("spool_max_bytes", int),
        "segment_bytes": ("spool_segment_bytes", int),
    },
}
