"""``eventbus broker``: run the broker, with the flags of ``python -m eventbus.broker``."""

from __future__ import annotations

import argparse
from typing import Any

from ..broker.__main__ import add_arguments, run_broker


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "broker",
        help="run the broker",
        description="Run the daemoneye event bus broker until SIGINT/SIGTERM. Settings: the "
        "embedded defaults, then --config FILE, then the flags given.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_broker)
