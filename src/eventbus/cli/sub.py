"""``eventbus sub FILTER...``: print the events that match, as text or JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import OrderedDict
from typing import Any

from ..client import Envelope, Subscription
from ._connect import add_client_arguments, open_client, run_command
from ._exit import ExitCode, Failure
from ._payloads import envelope_json, payload_text

# Recent events remembered to print an event matched by several filters once.
_REMEMBERED = 4096


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "sub",
        help="print the events matching filters",
        description="Subscribe to each FILTER ('+' one level, '#' the rest) and print what "
        "arrives: 'TOPIC PAYLOAD' lines, known payload types as JSON.",
    )
    parser.add_argument("filters", metavar="FILTER", nargs="+")
    parser.add_argument("--group", help="a shared subscription: each event to one member")
    parser.add_argument("--count", type=int, help="exit after N events")
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="with --count: give up (exit 4) when the events do not come within this long",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _sub))


def _print(envelope: Envelope, as_json: bool) -> None:
    if as_json:
        line = json.dumps(envelope_json(envelope), separators=(",", ":"))
    else:
        line = f"{envelope.topic} {payload_text(envelope.topic, envelope.payload)}"
    print(line, flush=True)


async def _sub(args: argparse.Namespace) -> None:
    if args.count is not None and args.count < 1:
        raise Failure(f"--count must be at least 1, not {args.count}")
    async with await open_client(args, reconnect=True) as client:
        subs: list[Subscription] = []
        for topic_filter in args.filters:
            subs.append(await client.subscribe(topic_filter, group=args.group))
        # A line on stderr that scripts (and tests) can wait for before they publish.
        print(f"subscribed to {' '.join(args.filters)}", file=sys.stderr, flush=True)
        events: asyncio.Queue[Envelope | BaseException] = asyncio.Queue()

        async def pump(sub: Subscription) -> None:
            try:
                async for envelope in sub:
                    await events.put(envelope)
            except BaseException as exc:
                await events.put(exc)
                raise

        tasks = [asyncio.create_task(pump(sub)) for sub in subs]
        try:
            await _print_events(args, events)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task


async def _print_events(
    args: argparse.Namespace, events: asyncio.Queue[Envelope | BaseException]
) -> None:
    seen = 0
    # An event matching several of the filters reaches each of their subscriptions as the
    # same object: printed once. The objects are kept, so their ids are not reused.
    printed: OrderedDict[int, Envelope] = OrderedDict()
    loop = asyncio.get_running_loop()
    deadline = None if args.wait is None else loop.time() + args.wait
    while args.count is None or seen < args.count:
        try:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            item = await asyncio.wait_for(events.get(), remaining)
        except asyncio.TimeoutError:
            raise Failure(
                f"{seen} of {args.count} event(s) within {args.wait:g} s", ExitCode.NO_ANSWER
            ) from None
        if isinstance(item, BaseException):
            raise item
        if id(item) in printed:
            continue
        printed[id(item)] = item
        if len(printed) > _REMEMBERED:
            printed.popitem(last=False)
        _print(item, args.json)
        seen += 1
