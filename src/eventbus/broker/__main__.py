"""``python -m eventbus.broker`` (also ``eventbus broker``): run a broker.

Settings come from the embedded defaults, then the ``--config`` file, then the flags: a flag
given on the command line wins over the file. Under systemd socket activation
(``LISTEN_FDS``/``LISTEN_PID``) the broker serves the socket it inherited on fd 3.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from typing import Any

from ..errors import EventBusError
from ..eventloop import run
from ..transport import default_address, inherited_listener
from . import load_config
from ._broker import Broker
from .config import BrokerConfig

log = logging.getLogger("eventbus.broker")

# BrokerConfig fields settable by a flag of the same name (--max-frame-bytes ...).
_TUNABLES = (
    "max_frame_bytes",
    "max_topic_bytes",
    "max_topic_levels",
    "max_outbound_bytes",
    "memory_budget_bytes",
    "budget_pause",
    "publisher_pause",
    "max_outbound_bytes_per_uid",
    "max_connections_per_uid",
    "max_subscriptions_per_uid",
    "max_subscriptions_per_connection",
    "hello_timeout",
    "heartbeat_interval",
    "stats_interval",
    "drain_timeout",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker's flags, on ``parser`` (shared with ``eventbus broker``)."""
    parser.add_argument(
        "--address",
        help=f"socket path or pipe name (default: EVENTBUS_ADDRESS, else {default_address()})",
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="broker settings ([broker]) and access-control policy; flags override it "
        "(default: the embedded policy and defaults)",
    )
    parser.add_argument("--group", help="group allowed to connect (socket 0660, dir 0750)")
    parser.add_argument("--name", help="the broker's name in Welcome and $SYS events")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default=None,
        help="event loop (default: uvloop where installed)",
    )
    parser.add_argument("--slow-consumer", choices=["drop", "disconnect"], default=None)
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (loopback only unless "
        "--metrics-allow-remote; needs the 'metrics' extra)",
    )
    parser.add_argument(
        "--metrics-allow-remote",
        action="store_true",
        default=None,
        help="let --metrics listen on a non-loopback address (it has no authentication)",
    )
    for name in _TUNABLES:
        default = getattr(BrokerConfig, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=None,
            dest=name,
            metavar=type(default).__name__.upper(),
            help=f"default {default}",
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eventbus.broker",
        description="Run the daemoneye event bus broker.",
    )
    add_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    """The file's settings (or the defaults) with every flag given on top."""
    config = load_config(args.config) if args.config else BrokerConfig()
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in _TUNABLES if getattr(args, name) is not None
    }
    for name in ("address", "name", "slow_consumer", "metrics", "metrics_allow_remote"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.group is not None:
        overrides["socket_group"] = int(args.group) if args.group.isdigit() else args.group
    listen_fd = inherited_listener()
    if listen_fd is not None:
        overrides["listen_fd"] = listen_fd
    return dataclasses.replace(config, **overrides)


async def _serve(config: BrokerConfig) -> None:
    broker = Broker(config)
    await broker.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signame in ("SIGINT", "SIGTERM"):
        sig = getattr(signal, signame, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: KeyboardInterrupt instead
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    if broker.metrics_url is not None:
        print(f"eventbus broker metrics on {broker.metrics_url}", flush=True)
    print(f"eventbus broker listening on {broker.address}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping: draining %d connection(s)", broker.clients)
        await broker.stop()


def run_broker(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop, 1 when the broker cannot start."""
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
        run(_serve(config), loop=args.loop)
    except (EventBusError, ValueError, OSError) as exc:
        print(f"eventbus broker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_broker(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
