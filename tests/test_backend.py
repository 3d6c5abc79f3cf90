"""The backend the package selected is the one this run expected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import eventbus

EXPECT = os.environ.get("EVENTBUS_EXPECT_BACKEND", "")


@pytest.mark.skipif(not EXPECT, reason="EVENTBUS_EXPECT_BACKEND not set")
def test_selected_backend_is_the_expected_one() -> None:
    assert eventbus.BACKEND == EXPECT, (
        f"expected the {EXPECT} backend, got {eventbus.BACKEND}: "
        "the compiled core did not build or did not import"
    )


def test_backend_is_known() -> None:
    assert eventbus.BACKEND in ("cython", "python")


def test_no_extensions_forces_the_fallback() -> None:
    env = dict(os.environ, EVENTBUS_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", "import eventbus; print(eventbus.BACKEND)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "python"


def test_public_functions_come_from_the_selected_backend() -> None:
    module = eventbus.validate_topic.__module__ or ""
    assert ("_fast" in module) == (eventbus.BACKEND == "cython")
