"""``eventbus stats``: the broker's totals over its connections, once or every few seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from ._connect import add_client_arguments, open_client, run_command
from ._listing import fetch_clients, human_bytes


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "stats",
        help="print the broker's totals (admin)",
        description="Clients, subscriptions, frames in, events out, drops, denials and "
        "queued bytes summed over the connections open now. The broker's totals since it "
        "started are in $SYS.broker.stats and the metrics endpoint.",
    )
    parser.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="print again every SECONDS (default 2) until interrupted",
    )
    parser.add_argument("--iterations", type=int, help="with --watch: stop after N prints")
    parser.add_argument("--json", action="store_true", help="one JSON object per print")
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _stats))


async def _stats(args: argparse.Namespace) -> None:
    async with await open_client(args) as client:
        printed = 0
        while True:
            infos = await fetch_clients(client)
            totals = {
                "timestamp": time.time(),
                "clients": len(infos),
                "subscriptions": sum(len(i.subscriptions) for i in infos),
                "messages_in": sum(i.messages_in for i in infos),
                "messages_out": sum(i.messages_out for i in infos),
                "dropped": sum(i.dropped for i in infos),
                "denied": sum(i.denied for i in infos),
                "bytes_in": sum(i.bytes_in for i in infos),
                "bytes_out": sum(i.bytes_out for i in infos),
                "queued_bytes": sum(i.queued_bytes for i in infos),
            }
            if args.json:
                print(json.dumps(totals), flush=True)
            else:
                print(
                    f"clients {totals['clients']}  subscriptions {totals['subscriptions']}  "
                    f"in {totals['messages_in']}  out {totals['messages_out']}  "
                    f"dropped {totals['dropped']}  denied {totals['denied']}  "
                    f"bytes in {human_bytes(totals['bytes_in'])}  "
                    f"out {human_bytes(totals['bytes_out'])}  "
                    f"queued {human_bytes(totals['queued_bytes'])}",
                    flush=True,
                )
            printed += 1
            if args.watch is None or (args.iterations is not None and printed >= args.iterations):
                return
            await asyncio.sleep(args.watch)
