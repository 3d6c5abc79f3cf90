"""``eventbus pub TOPIC [DATA|-]``: publish one event, or many at a rate."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from ._connect import add_client_arguments, open_client, run_command
from ._exit import Failure
from ._payloads import read_payload


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "pub",
        help="publish an event",
        description="Publish DATA (or standard input with '-', or --file) on TOPIC.",
    )
    parser.add_argument("topic", metavar="TOPIC")
    parser.add_argument("data", metavar="DATA", nargs="?", help="the payload text; - reads stdin")
    parser.add_argument("--file", help="read the payload from this file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="DATA is JSON for TOPIC's payload type (e.g. ProcessEvent), sent as protobuf",
    )
    parser.add_argument("--repeat", type=int, default=1, help="publish N times (default 1)")
    parser.add_argument("--rate", type=float, help="at most this many events per second")
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="wait for the broker's answer and print how many subscribers each reached",
    )
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _pub))


async def _pub(args: argparse.Namespace) -> None:
    if args.repeat < 1:
        raise Failure(f"--repeat must be at least 1, not {args.repeat}")
    if args.rate is not None and args.rate <= 0:
        raise Failure(f"--rate must be positive, not {args.rate:g}")
    payload = read_payload(args.topic, args.data, args.file, args.json)
    async with await open_client(args) as client:
        start = time.monotonic()
        for n in range(args.repeat):
            if args.rate is not None:
                # Paced against the start, so a slow publish does not lower the rate.
                delay = start + n / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            delivered = await client.publish(args.topic, payload, confirm=args.confirm)
            if args.confirm:
                print(f"delivered to {delivered} subscriber(s)", flush=True)
        await client.flush()
