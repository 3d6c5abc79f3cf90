"""Waiting for a condition in an async test: poll with a deadline that only fails a hang.

Success never depends on how long anything takes; the deadline is a guard against a test
that would otherwise wait for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

#: How long any one step may take before the test fails.
DEADLINE = 30.0


async def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Return once ``condition()`` is true; fail the test, naming ``what``, after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.01)
