"""Topic grammar (DESIGN §2), pure-Python reference of ``_fast/_grammar.pyx``.

A topic name is a string of non-empty levels separated by ``.``; a filter may also use ``+``
(one whole level) and ``#`` (the whole last level, zero or more levels). Both twins raise the
same exceptions with the same messages for the same input.
"""

from __future__ import annotations

import operator
import re
import sys

from .errors import InvalidTopic

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LEVELS",
    "filter_covers",
    "filter_levels",
    "topic_levels",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]

DEFAULT_MAX_BYTES = 256
DEFAULT_MAX_LEVELS = 16


def _bad_char(ch: str) -> str | None:
    """The rule a character breaks inside a level, or None when it is allowed."""
    code = ord(ch)
    if code == 0:
        return "NUL is not allowed"
    if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:
        return f"control character U+{code:04X} is not allowed"
    if ch.isspace():
        return f"whitespace U+{code:04X} is not allowed"
    if 0xD800 <= code <= 0xDFFF:
        return f"lone surrogate U+{code:04X} is not valid UTF-8"
    return None


def _fail(kind: str, text: str, rule: str) -> InvalidTopic:
    return InvalidTopic(f"invalid {kind} {text!r}: {rule}")


# Any character that needs the exact scan below: separators are fine, everything the rules
# single out (wildcards, NUL, C0, DEL, C1, whitespace -- re's \s is str.isspace --, lone
# surrogates) sends the input there, so both paths give the same answer.
_SUSPECT = re.compile(r"[\x00-\x20\x7f-\xa0+#\s\ud800-\udfff]")
# The same for a filter, where '+' and '#' are checked level by level instead.
_SUSPECT_IN_FILTER = re.compile(r"[\x00-\x20\x7f-\xa0\s\ud800-\udfff]")


def _split(text: object, is_filter: bool, max_bytes: int, max_levels: int) -> list[str]:
    # Fast path: C-speed checks for the common, valid input.
    if (
        isinstance(text, str)
        and text
        and len(text) <= max_bytes
        and (_SUSPECT_IN_FILTER if is_filter else _SUSPECT).search(text) is None
        and len(text.encode()) <= max_bytes
    ):
        levels = text.split(".")
        if (
            "" not in levels
            and len(levels) <= max_levels
            and (not is_filter or _wildcards_whole(text, levels))
        ):
            return levels
    return _split_exact(text, is_filter, max_bytes, max_levels)


def _wildcards_whole(text: str, levels: list[str]) -> bool:
    """Whether every wildcard in a filter is a whole level, and '#' only the last one."""
    if "+" not in text and "#" not in text:
        return True
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "+" in level or "#" in level:
            if level == "+" or (level == "#" and index == last):
                continue
            return False
    return True


def _split_exact(text: object, is_filter: bool, max_bytes: int, max_levels: int) -> list[str]:
    """Validate character by character; the reference for every rule and its message."""
    kind = "topic filter" if is_filter else "topic name"
    if not isinstance(text, str):
        raise TypeError(f"{kind} must be str, not {type(text).__name__}")
    if not text:
        raise _fail(kind, text, "must not be empty")
    size = 0
    for ch in text:
        code = ord(ch)
        size += 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    if size > max_bytes:
        raise _fail(kind, text, f"is {size} UTF-8 bytes, over the limit of {max_bytes}")
    levels = text.split(".")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if not level:
            raise _fail(kind, text, f"level {index + 1} is empty")
        if level == "+" or level == "#":
            if not is_filter:
                raise _fail(kind, text, f"wildcard {level!r} is not allowed in a topic name")
            if level == "#" and index != last:
                raise _fail(kind, text, "'#' must be the last level")
            continue
        for ch in level:
            if ch == "+" or ch == "#":
                if not is_filter:
                    raise _fail(kind, text, f"wildcard {ch!r} is not allowed in a topic name")
                raise _fail(kind, text, f"wildcard {ch!r} must be a whole level")
            rule = _bad_char(ch)
            if rule is not None:
                raise _fail(kind, text, f"level {index + 1}: {rule}")
    if len(levels) > max_levels:
        raise _fail(kind, text, f"has {len(levels)} levels, over the limit of {max_levels}")
    return levels


def topic_levels(
    name: str, max_bytes: int = DEFAULT_MAX_BYTES, max_levels: int = DEFAULT_MAX_LEVELS
) -> list[str]:
    """Validate a topic name and return its levels."""
    return _split(name, False, max_bytes, max_levels)


def filter_levels(
    topic_filter: str, max_bytes: int = DEFAULT_MAX_BYTES, max_levels: int = DEFAULT_MAX_LEVELS
) -> list[str]:
    """Validate a topic filter and return its levels."""
    return _split(topic_filter, True, max_bytes, max_levels)


def validate_topic(
    name: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_levels: int = DEFAULT_MAX_LEVELS
) -> None:
    """Raise :class:`InvalidTopic` unless ``name`` is a valid topic name (no wildcards)."""
    _split(name, False, max_bytes, max_levels)


def validate_filter(
    topic_filter: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_levels: int = DEFAULT_MAX_LEVELS,
) -> None:
    """Raise :class:`InvalidTopic` unless ``topic_filter`` is a valid topic filter."""
    _split(topic_filter, True, max_bytes, max_levels)


def topic_matches(topic_filter: str, name: str) -> bool:
    """Whether the filter matches the topic name; both are validated first."""
    flevels = _split(topic_filter, True, DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS)
    tlevels = _split(name, False, DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS)
    return _matches(flevels, tlevels)


def _matches(flevels: list[str], tlevels: list[str]) -> bool:
    """:func:`topic_matches` on validated levels (the trie checks its cached topics so)."""
    # MQTT rule: a filter opening with a wildcard never matches a broker ($) topic.
    if tlevels[0][0] == "$" and flevels[0] in ("+", "#"):
        return False
    count = len(tlevels)
    for index, level in enumerate(flevels):
        if level == "#":
            return True
        if index >= count:
            return False
        if level != "+" and level != tlevels[index]:
            return False
    return len(flevels) == count


def _limit(name: str, value: object) -> int:
    """A constructor's topic limit, checked once so the hot paths compare plain integers.

    Values past the largest Py_ssize_t are clamped: no topic is ever that long, so the
    answers are the same, and the compiled twin can hold the limit in a C integer.
    """
    limit = operator.index(value)  # type: ignore[arg-type]
    if limit < 1:
        raise ValueError(f"{name} must be at least 1, not {limit}")
    return min(limit, sys.maxsize)


def filter_covers(outer: str, inner: str) -> bool:
    """Whether every topic that ``inner`` matches is also matched by ``outer``.

    This is the subscribe check of the ACL: ``events.process.+`` is inside
    ``events.process.#``; ``events.#`` is not.
    """
    olevels = _split(outer, True, DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS)
    ilevels = _split(inner, True, DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS)
    return _covers(olevels, ilevels)


def _covers(olevels: list[str], ilevels: list[str]) -> bool:
    """:func:`filter_covers` on validated levels (the rights table keeps its rules so)."""
    count = len(ilevels)
    for index, level in enumerate(olevels):
        if level == "#":
            # A leading '#' excludes $ topics, which a literal '$...' first level reaches.
            return index > 0 or ilevels[0][0] != "$"
        if index >= count:
            return False
        sub = ilevels[index]
        if sub == "#":
            # Inner '#' here also matches the topic that ends before it, which outer misses;
            # at the first level no such topic exists, and '+.#' matches all that '#' does.
            return index == 0 and olevels == ["+", "#"]
        if level == "+":
            if index == 0 and sub[0] == "$":
                return False
        elif level != sub:
            return False
    return len(olevels) == count
