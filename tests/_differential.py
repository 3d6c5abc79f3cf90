"""Shared parts of the differential tests: settings, outcomes and the naive oracles.

The oracles are written in a different way from the implementations (DESIGN §8).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from hypothesis import settings

PROPERTY = settings(max_examples=250, deadline=None, derandomize=True)
PROPERTY_SLOW = settings(max_examples=150, deadline=None, derandomize=True)


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """What a call gives: ``("ok", result)`` or ``(exception type, message)``."""
    try:
        return ("ok", call(*args, **kwargs))
    except Exception as exc:
        return (type(exc), str(exc))


def agree(results: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """Assert every backend gave the same outcome; return it."""
    first = results[0]
    for other in results[1:]:
        assert other == first
    return first


def naive_valid(text: str, is_filter: bool, max_bytes: int = 256, max_levels: int = 16) -> bool:
    """Validity by the letter of DESIGN §2, written independently of the implementations."""
    if not text or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        return False
    parts = text.split(".")
    for index, part in enumerate(parts):
        if part in ("+", "#"):
            if not is_filter or (part == "#" and index != len(parts) - 1):
                return False
            continue
        if not part:
            return False
        for ch in part:
            if ch in "+#" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs"):
                return False
    return len(parts) <= max_levels


def naive_match(flevels: list[str], tlevels: list[str]) -> bool:
    """Whether a (valid) filter matches a (valid) topic, recursively over the levels."""
    if tlevels[0].startswith("$") and flevels[0] in ("+", "#"):
        return False

    def walk(f: list[str], t: list[str]) -> bool:
        if not f:
            return not t
        if f[0] == "#":
            return True
        return bool(t) and f[0] in ("+", t[0]) and walk(f[1:], t[1:])

    return walk(flevels, tlevels)
