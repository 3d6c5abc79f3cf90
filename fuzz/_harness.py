"""What every fuzz target shares: coverage instrumentation and the libFuzzer entry point.

A target is ``fuzz/<name>.py`` with a ``TestOneInput(data: bytes)`` that raises only when it
has found a bug. ``python fuzz/<name>.py [libFuzzer args]`` fuzzes it; the same function
also replays the seed corpus in the test suite, where atheris need not be installed, so
instrumentation happens only when the target runs as the fuzzer.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any


def instrumented(
    fuzzing: bool, include: tuple[str, ...] = ("eventbus",)
) -> contextlib.AbstractContextManager[Any]:
    """Instrument the ``include`` modules imported in the ``with`` block, when ``fuzzing``.

    Only our code by default: coverage of protobuf or the stdlib would only slow each run.
    """
    if not fuzzing:
        return contextlib.nullcontext()
    import atheris

    hook: contextlib.AbstractContextManager[Any] = atheris.instrument_imports(include=list(include))
    return hook


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Run libFuzzer on ``test_one_input`` with the command line's arguments."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
