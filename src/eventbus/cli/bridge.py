"""``eventbus bridge``: this host's bus to NATS JetStream and back, with the flags of
``python -m eventbus.bridge`` (docs/fleet.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ..bridge.__main__ import DESCRIPTION, add_arguments, run_bridge


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "bridge", help="bridge this host's bus to NATS JetStream", description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(func=run_bridge)
