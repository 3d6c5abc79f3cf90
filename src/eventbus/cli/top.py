"""``eventbus top``: per-connection rates, redrawn in place like top(1), without curses."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from ..v1 import frames_pb2
from ._connect import add_client_arguments, open_client, run_command
from ._listing import fetch_clients, format_table, human_bytes

# Home the cursor and clear the screen: every terminal since the VT100 understands it.
_CLEAR = "\x1b[H\x1b[2J"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "top",
        help="live per-client rates (admin)",
        description="Every connection's rates of frames in, events out, bytes and drops "
        "per second, busiest first, redrawn every --interval seconds.",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    parser.add_argument("--iterations", type=int, help="stop after N tables")
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _top))


def _rates(
    now: list[frames_pb2.ClientInfo],
    before: dict[int, frames_pb2.ClientInfo],
    seconds: float,
) -> list[list[str]]:
    rows: list[tuple[float, list[str]]] = []
    for info in now:
        ident = info.identity
        old = before.get(ident.connection_id)

        def rate(
            field: str,
            info: frames_pb2.ClientInfo = info,
            old: frames_pb2.ClientInfo | None = old,
        ) -> float:
            if old is None or seconds <= 0:
                return 0.0
            change: int = getattr(info, field) - getattr(old, field)
            return max(0, change) / seconds

        out = rate("messages_out")
        rows.append(
            (
                out + rate("messages_in"),
                [
                    str(ident.connection_id),
                    str(ident.pid),
                    ident.principal,
                    ident.client_name,
                    f"{rate('messages_in'):.1f}",
                    f"{out:.1f}",
                    human_bytes(rate("bytes_in")) + "/s",
                    human_bytes(rate("bytes_out")) + "/s",
                    f"{rate('dropped'):.1f}",
                    human_bytes(info.queued_bytes),
                    str(len(info.subscriptions)),
                ],
            )
        )
    rows.sort(key=lambda row: -row[0])
    return [row for _, row in rows]


async def _top(args: argparse.Namespace) -> None:
    redraw = sys.stdout.isatty()
    header = ["CONN", "PID", "PRINCIPAL", "NAME", "IN/s", "OUT/s", "BYTES IN", "BYTES OUT"]
    header += ["DROP/s", "QUEUED", "SUBS"]
    async with await open_client(args) as client:
        before: dict[int, frames_pb2.ClientInfo] = {}
        then = time.monotonic()
        shown = 0
        while args.iterations is None or shown < args.iterations:
            infos = await fetch_clients(client)
            now = time.monotonic()
            table = format_table(header, _rates(infos, before, now - then))
            stamp = time.strftime("%H:%M:%S")
            title = f"eventbus top - {stamp} - {len(infos)} client(s), every {args.interval:g} s"
            print((_CLEAR if redraw else "") + title + "\n" + table + "\n", flush=True)
            before = {info.identity.connection_id: info for info in infos}
            then = now
            shown += 1
            if args.iterations is None or shown < args.iterations:
                await asyncio.sleep(args.interval)
