"""Event loop choice: uvloop where installed (not on Windows), else asyncio's default.

``EVENTBUS_LOOP=asyncio`` (or ``loop="asyncio"``) forces the standard loop.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory(loop: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of the loop to use: ``"uvloop"``, ``"asyncio"`` or ``None`` (default)."""
    choice = loop or os.environ.get("EVENTBUS_LOOP") or "auto"
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"unknown event loop {choice!r}: use 'uvloop' or 'asyncio'")
    if choice != "asyncio" and sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError("uvloop was asked for but is not installed") from None
        else:
            return uvloop.new_event_loop
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], *, loop: str | None = None) -> T:
    """Run ``main`` to completion on the chosen loop."""
    factory = loop_factory(loop)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    event_loop = factory()
    asyncio.set_event_loop(event_loop)
    try:
        return event_loop.run_until_complete(main)
    finally:
        try:
            event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            event_loop.close()
