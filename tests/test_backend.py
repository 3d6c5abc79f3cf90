"""The backend the package selected is the one this run expected."""

from __future__ import annotations

import importlib
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


def test_every_core_object_comes_from_the_selected_backend() -> None:
    from eventbus import _backend

    prefix = "eventbus._fast._" if eventbus.BACKEND == "cython" else "eventbus._"
    for name in _backend.__all__:
        if name == "BACKEND":
            continue
        source = importlib.import_module(prefix + _HOME[name])
        assert getattr(_backend, name) is getattr(source, name), name


_HOME = {
    "FrameSplitter": "framing",
    "TopicTrie": "trie",
    "RightsTable": "rights",
    "PUBLISH": "rights",
    "SUBSCRIBE": "rights",
    "ADMIN": "rights",
    "filter_covers": "grammar",
    "filter_levels": "grammar",
    "topic_levels": "grammar",
    "topic_matches": "grammar",
    "validate_filter": "grammar",
    "validate_topic": "grammar",
    "FRAME_EVENT": "wire",
    "FRAME_PUBLISH": "wire",
    "EventView": "wire",
    "PublishView": "wire",
    "decode_event": "wire",
    "decode_publish": "wire",
    "encode_event": "wire",
    "encode_publish": "wire",
    "frame_kind": "wire",
}
