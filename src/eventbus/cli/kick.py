"""``eventbus kick CONNECTION``: disconnect a client (admin); it is told who kicked it."""

from __future__ import annotations

import argparse
from typing import Any

from ._connect import add_client_arguments, open_client, run_command
from ._exit import Failure
from ._listing import fetch_clients


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "kick",
        help="disconnect a client (admin)",
        description="Disconnect the client on CONNECTION: a connection id as `eventbus "
        "clients` lists it, or a client name that names exactly one connection. The client "
        "gets an error naming the principal that kicked it, and does not reconnect by itself.",
    )
    parser.add_argument("connection", metavar="CONNECTION")
    parser.add_argument("--reason", default="", help="told to the client and logged in $SYS")
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _kick))


async def _kick(args: argparse.Namespace) -> None:
    async with await open_client(args) as client:
        target = args.connection
        if target.isdigit():
            connection_id = int(target)
        else:
            named = [i for i in await fetch_clients(client) if i.identity.client_name == target]
            if len(named) != 1:
                found = ", ".join(str(i.identity.connection_id) for i in named)
                raise Failure(
                    f"client name {target!r} names {len(named)} connections"
                    + (
                        f" ({found}); give the connection id"
                        if named
                        else "; see `eventbus clients`"
                    )
                )
            connection_id = named[0].identity.connection_id
        info = await client.kick(connection_id, reason=args.reason)
    ident = info.identity
    print(
        f"kicked connection {ident.connection_id} "
        f"(principal {ident.principal!r}, name {ident.client_name!r}, pid {ident.pid})",
        flush=True,
    )
