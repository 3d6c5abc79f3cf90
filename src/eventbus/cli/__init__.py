"""The ``eventbus`` command (also ``python -m eventbus``): run, watch and poke the bus.

One module per subcommand, each with a ``register(commands)`` that adds its parser and the
function that runs it; exit codes are in ``_exit`` and ``docs/operations.md``.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import bridge, broker, check_config, clients, kick, pub, request, stats, sub, top
from ._exit import ExitCode, Failure

__all__ = ["ExitCode", "Failure", "main"]

_SUBCOMMANDS = (broker, pub, sub, request, clients, stats, top, kick, check_config, bridge)


def parser() -> argparse.ArgumentParser:
    """The whole command line of ``eventbus``."""
    root = argparse.ArgumentParser(
        prog="eventbus",
        description="The daemoneye event bus: run the broker, publish, subscribe, inspect.",
        epilog="Exit codes: 0 ok; 1 refused or failed (the reason on stderr); 2 usage; "
        "3 no broker at the address; 4 no answer in time; 130 interrupted. "
        "See docs/operations.md.",
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run ``eventbus`` with ``argv`` (default: the process's arguments); the exit code."""
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
