"""``eventbus clients``: every connection, its identity, subscriptions and counters."""

from __future__ import annotations

import argparse
import json
from typing import Any

from google.protobuf import json_format

from ._connect import add_client_arguments, open_client, run_command
from ._listing import age, fetch_clients, format_table, human_bytes


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "clients",
        help="list the connected clients (admin)",
        description="List every connection: id, pid, principal, name, subscriptions, "
        "counters. Needs a principal with the admin right.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per client")
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _clients))


async def _clients(args: argparse.Namespace) -> None:
    async with await open_client(args) as client:
        infos = await fetch_clients(client)
    if args.json:
        for info in infos:
            print(json.dumps(json_format.MessageToDict(info), separators=(",", ":")))
        return
    header = ["CONN", "PID", "UID", "PRINCIPAL", "NAME", "AGE", "IN", "OUT", "DROPPED"]
    header += ["DENIED", "QUEUED", "SUBSCRIPTIONS"]
    rows = []
    for info in infos:
        ident = info.identity
        subs = ", ".join(
            s.filter + (f" (group {s.group})" if s.group else "") for s in info.subscriptions
        )
        rows.append(
            [
                str(ident.connection_id),
                str(ident.pid),
                str(ident.uid),
                ident.principal,
                ident.client_name,
                age(info.connected_at_ns),
                str(info.messages_in),
                str(info.messages_out),
                str(info.dropped),
                str(info.denied),
                human_bytes(info.queued_bytes),
                subs or "-",
            ]
        )
    print(format_table(header, rows), flush=True)
