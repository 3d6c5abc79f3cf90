"""``python -m eventbus.bridge``: forward this host's bus to NATS JetStream and back.

``main(argv)`` is the whole command; ``eventbus bridge`` registers the same arguments
(``add_arguments``) and runs them (``run_bridge``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from ..errors import ConfigError, EventBusError
from ..eventloop import run

__all__ = ["add_arguments", "main", "run_bridge"]

log = logging.getLogger("eventbus.bridge")


DESCRIPTION = "Bridge this host's event bus to a NATS JetStream cluster (docs/fleet.md)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge's flags, on ``parser``."""
    parser.add_argument("--address", help="the local broker (default: the bus default address)")
    parser.add_argument(
        "--nats",
        action="append",
        metavar="nats://HOST:PORT",
        help="a NATS server; repeat for the members of a cluster (default: nats://127.0.0.1:4222)",
    )
    parser.add_argument("--host-id", help="this host's subject token (default: the host name)")
    parser.add_argument("--config", metavar="bridge.toml", help="topic maps, stream, spool...")
    parser.add_argument("--credentials", metavar="FILE", help="NATS user credentials file")
    parser.add_argument("--stream", help="JetStream stream (default: DAEMONEYE)")
    parser.add_argument("--replicas", type=int, help="replicas of the stream if it is created")
    parser.add_argument("--spool-dir", help="the on-disk queue's directory")
    parser.add_argument("--spool-max-bytes", type=int, help="bound of the on-disk queue")
    parser.add_argument("--stats-interval", type=float, help="seconds between $SYS.bridge.stats")
    parser.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics there")
    parser.add_argument(
        "--up", action="append", metavar="FILTER", help="local filter to forward (repeatable)"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default=None)


async def _serve(bridge: object) -> None:
    from .bridge import Bridge

    assert isinstance(bridge, Bridge)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signame in ("SIGINT", "SIGTERM"):
        sig = getattr(signal, signame, None)
        if sig is not None:
            # Windows: KeyboardInterrupt instead.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    await bridge.run(stop)


def main(argv: list[str] | None = None) -> int:
    """Run the bridge with ``argv`` (default: the process's arguments); see ``run_bridge``."""
    parser = argparse.ArgumentParser(prog="python -m eventbus.bridge", description=DESCRIPTION)
    add_arguments(parser)
    return run_bridge(parser.parse_args(argv))


def run_bridge(args: argparse.Namespace) -> int:
    """Run the bridge; the exit code: 0 after SIGINT/SIGTERM, 2 for a bad configuration,
    1 when the local broker cannot be reached or refuses the bridge, or the spool
    directory cannot be used."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        from .bridge import Bridge
        from .config import BridgeConfig
    except ImportError as exc:  # nats-py missing
        print(f"the bridge needs nats-py: pip install nats-py ({exc})", file=sys.stderr)
        return 2
    try:
        config = BridgeConfig.load(args.config) if args.config else BridgeConfig()
        config = config.replace(
            address=args.address,
            nats=args.nats,
            host_id=args.host_id,
            credentials=args.credentials,
            stream=args.stream,
            replicas=args.replicas,
            spool_dir=args.spool_dir,
            spool_max_bytes=args.spool_max_bytes,
            stats_interval=args.stats_interval,
            metrics=args.metrics,
            up=tuple(args.up) if args.up else None,
        )
        bridge = Bridge(config, say=lambda line: print(line, flush=True))
    except ConfigError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    try:
        run(_serve(bridge), loop=args.loop)
    except KeyboardInterrupt:
        return 0
    except EventBusError as exc:
        print(
            f"bridge: {type(exc).__name__}: {exc} (is the broker running at "
            f"{config.address or 'the default address'}? set --address or EVENTBUS_ADDRESS)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # the spool directory cannot be made, read or written
        print(f"bridge: {exc} (spool {config.spool_path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
