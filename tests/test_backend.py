"""The backend the package selected is the one this run expected."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("value", ["", "0"])
def test_empty_or_zero_does_not_force_the_fallback(value: str) -> None:
    # compared with the variable unset: this run itself may have set it
    assert _backend_under(value) == _backend_under(None)


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_any_other_value_forces_the_fallback(value: str) -> None:
    assert _backend_under(value) == "python"


def _backend_under(value: str | None) -> str:
    env = dict(os.environ)
    env.pop("EVENTBUS_NO_EXTENSIONS", None)
    if value is not None:
        env["EVENTBUS_NO_EXTENSIONS"] = value
    out = subprocess.run(
        [sys.executable, "-c", "import eventbus; print(eventbus.BACKEND)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_setup_py_reads_the_variable_by_the_same_rule() -> None:
    root = Path(__file__).resolve().parent.parent
    rules = [
        _rule(root / "setup.py"),
        _rule(root / "src" / "eventbus" / "_backend.py"),
    ]
    assert rules[0] == rules[1]


def _rule(path: Path) -> str:
    """The body of ``no_extensions_requested`` in ``path``, without its docstring."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name == "no_extensions_requested":
            return "\n".join(ast.dump(statement) for statement in node.body[1:])
    raise AssertionError(f"no no_extensions_requested in {path}")


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
    "Delivery": "delivery",
    "Mailbox": "delivery",
    "Sender": "sending",
    "Sequences": "sending",
    "FrameSplitter": "framing",
    "Outbox": "outbox",
    "fan_out": "outbox",
    "write_out": "outbox",
    "route_publish": "publish",
    "serve_frames": "publish",
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
    "FRAME_PUB_ACK": "wire",
    "EventView": "wire",
    "PubAckView": "wire",
    "PublishView": "wire",
    "decode_event": "wire",
    "decode_pub_ack": "wire",
    "decode_publish": "wire",
    "encode_event": "encode",
    "encode_pub_ack": "encode",
    "encode_publish": "encode",
    "frame_kind": "wire",
}
