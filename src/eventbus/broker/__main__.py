"""``python -m eventbus.broker``: run a broker on the embedded defaults or a policy file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ..acl import Policy
from ..errors import EventBusError
from ..eventloop import run
from ..transport import default_address
from ._broker import Broker
from .config import BrokerConfig

log = logging.getLogger("eventbus.broker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eventbus.broker",
        description="Run the daemoneye event bus broker.",
    )
    parser.add_argument(
        "--address",
        help=f"socket path or pipe name (default: EVENTBUS_ADDRESS, else {default_address()})",
    )
    parser.add_argument(
        "--config",
        metavar="POLICY.toml",
        help="access-control policy file (default: the embedded policy)",
    )
    parser.add_argument("--group", help="group allowed to connect (socket 0660, dir 0750)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default=None,
        help="event loop (default: uvloop where installed)",
    )
    parser.add_argument("--slow-consumer", choices=["drop", "disconnect"], default="drop")
    for name in _TUNABLES:
        default = getattr(BrokerConfig, name)
        parser.add_argument(
            "--" + name.replace("_", "-"), type=type(default), default=default, dest=name
        )
    return parser


# BrokerConfig fields settable by a flag of the same name (--max-frame-bytes ...).
_TUNABLES = (
    "max_frame_bytes",
    "max_outbound_bytes",
    "memory_budget_bytes",
    "budget_pause",
    "max_outbound_bytes_per_uid",
    "max_connections_per_uid",
    "max_subscriptions_per_uid",
    "max_subscriptions_per_connection",
    "heartbeat_interval",
    "stats_interval",
)


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
    print(f"eventbus broker listening on {broker.address}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping: draining %d connection(s)", broker.clients)
        await broker.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    group: int | str | None = None
    if args.group is not None:
        group = int(args.group) if args.group.isdigit() else args.group
    try:
        policy = Policy.load(args.config) if args.config else None
        config = BrokerConfig(
            address=args.address,
            policy=policy,
            socket_group=group,
            slow_consumer=args.slow_consumer,
            **{name: getattr(args, name) for name in _TUNABLES},
        )
        run(_serve(config), loop=args.loop)
    except (EventBusError, ValueError, OSError) as exc:
        print(f"eventbus broker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
