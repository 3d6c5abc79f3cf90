"""The options every client subcommand shares, and one place that turns errors into exit
codes with a message that says what to do."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .. import errors
from ..client import Client, connect
from ..eventloop import run
from ..transport import default_address
from ._exit import ExitCode, Failure

__all__ = ["PRINCIPAL_ENV", "add_client_arguments", "open_client", "run_command"]

#: The environment variable that sets the default ``--principal``.
PRINCIPAL_ENV = "EVENTBUS_PRINCIPAL"


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        help=f"the broker's socket path or pipe name (default: EVENTBUS_ADDRESS, else "
        f"{default_address()})",
    )
    parser.add_argument(
        "--principal",
        default=os.environ.get(PRINCIPAL_ENV) or "agent",
        help=f"who to connect as; the policy must bind it to this process's user "
        f"(default: {PRINCIPAL_ENV}, else agent)",
    )
    parser.add_argument(
        "--client-name", help="the name other clients see (default: eventbus-COMMAND)"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)"
    )


async def open_client(args: argparse.Namespace, *, reconnect: bool = False) -> Client:
    """Connect as ``--principal``; a broker that is not there is a :class:`Failure` with
    exit code 3."""
    address = args.address or default_address()
    try:
        return await connect(
            address,
            principal=args.principal,
            client_name=args.client_name or f"eventbus-{args.command}[{os.getpid()}]",
            timeout=args.timeout,
            reconnect=reconnect,
        )
    except errors.PermissionDenied as exc:
        raise Failure(
            f"the broker at {address!r} refused principal {args.principal!r}: {exc}"
        ) from None
    except errors.ConnectionLost as exc:
        raise Failure(str(exc), ExitCode.NO_BROKER) from None


def _code_for(exc: BaseException) -> ExitCode:
    if isinstance(exc, (errors.NoResponders, errors.Timeout)):
        return ExitCode.NO_ANSWER
    if isinstance(exc, errors.Kicked):
        return ExitCode.FAILED
    if isinstance(exc, errors.ConnectionLost):
        return ExitCode.NO_BROKER
    return ExitCode.FAILED


def run_command(
    args: argparse.Namespace, command: Callable[[argparse.Namespace], Coroutine[Any, Any, None]]
) -> int:
    """Run an async subcommand; every error a user can cause becomes a line on stderr."""
    prog = f"eventbus {args.command}"
    try:
        run(command(args))
    except Failure as failure:
        print(f"{prog}: {failure}", file=sys.stderr)
        return failure.code
    except BrokenPipeError:  # `eventbus sub '#' | head`
        return ExitCode.OK
    except (errors.EventBusError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return _code_for(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return ExitCode.INTERRUPTED
    return ExitCode.OK
