"""Shared fixtures: every core test runs against both backends (compiled and pure Python)."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import eventbus._delivery
import eventbus._encode
import eventbus._framing
import eventbus._grammar
import eventbus._outbox
import eventbus._publish
import eventbus._rights
import eventbus._sending
import eventbus._trie
import eventbus._wire

_PY = SimpleNamespace(
    name="python",
    grammar=eventbus._grammar,
    trie=eventbus._trie,
    rights=eventbus._rights,
    framing=eventbus._framing,
    wire=eventbus._wire,
    encode=eventbus._encode,
    outbox=eventbus._outbox,
    publish=eventbus._publish,
    delivery=eventbus._delivery,
    sending=eventbus._sending,
)


def _compiled() -> SimpleNamespace | None:
    try:
        modules = {
            name: importlib.import_module(f"eventbus._fast._{name}")
            for name in (
                "grammar",
                "trie",
                "rights",
                "framing",
                "wire",
                "encode",
                "outbox",
                "publish",
                "delivery",
                "sending",
            )
        }
    except ImportError:
        return None
    return SimpleNamespace(name="cython", **modules)


_CY = _compiled()

# A run that expects the compiled core must not quietly test only the fallback.
EXPECT = os.environ.get("EVENTBUS_EXPECT_BACKEND", "")


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("python"),
        pytest.param("cython", marks=pytest.mark.cython),
    ],
)
def core(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The core modules of one backend: ``core.grammar``, ``core.trie``, ``core.rights``..."""
    if request.param == "python":
        return _PY
    if _CY is None:
        if EXPECT == "cython":
            pytest.fail("the compiled core was expected but eventbus._fast is not importable")
        pytest.skip("compiled core not built")
    return _CY


@pytest.fixture(scope="session")
def both_cores() -> list[SimpleNamespace]:
    """Both backends, for differential tests (only Python when the core is not built)."""
    if _CY is None and EXPECT == "cython":
        pytest.fail("the compiled core was expected but eventbus._fast is not importable")
    return [_PY] if _CY is None else [_PY, _CY]


@pytest.fixture
def address() -> Iterator[str]:
    """A socket path in a fresh private directory, removed with everything in it; on
    Windows a named pipe name of its own (the pipe goes when its server closes)."""
    if sys.platform == "win32":
        yield rf"\\.\pipe\eventbus-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        return
    directory = tempfile.mkdtemp(prefix="eb-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield os.path.join(directory, "bus", "eventbus.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
