"""The topic grammar of DESIGN §2, on both backends (the ``core`` fixture)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from eventbus.errors import InvalidTopic

# --- names ---------------------------------------------------------------------------------

VALID_NAMES = [
    "events",
    "events.process.lifecycle",
    "control.collector.task.process",
    "$SYS.broker.stats",
    "$SYS",
    "a.$b",
    "a$",
    "é.日本.🎉",
    "UPPER.lower.MiXeD",
    "a-b_c:d/e@f",
    "\u200b",  # zero width space is a format character, not whitespace
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(core: SimpleNamespace, name: str) -> None:
    core.grammar.validate_topic(name)
    assert core.grammar.topic_levels(name) == name.split(".")


INVALID_NAMES = [
    ("", "must not be empty"),
    (".", "level 1 is empty"),
    (".a", "level 1 is empty"),
    ("a.", "level 2 is empty"),
    ("a..b", "level 2 is empty"),
    ("+", "wildcard '+' is not allowed in a topic name"),
    ("#", "wildcard '#' is not allowed in a topic name"),
    ("a.+", "wildcard '+' is not allowed in a topic name"),
    ("events.#", "wildcard '#' is not allowed in a topic name"),
    ("a+", "wildcard '+' is not allowed in a topic name"),
    ("a.b#c", "wildcard '#' is not allowed in a topic name"),
    ("a\x00b", "level 1: NUL is not allowed"),
    ("a.\tb", "level 2: control character U+0009 is not allowed"),
    ("a.\nb", "level 2: control character U+000A is not allowed"),
    ("\x01", "level 1: control character U+0001 is not allowed"),
    ("\x1f", "level 1: control character U+001F is not allowed"),
    ("a\x7f", "level 1: control character U+007F is not allowed"),
    ("a\x80", "level 1: control character U+0080 is not allowed"),
    ("a\x85", "level 1: control character U+0085 is not allowed"),
    ("a\x9f", "level 1: control character U+009F is not allowed"),
    ("a b", "level 1: whitespace U+0020 is not allowed"),
    ("a\u00a0b", "level 1: whitespace U+00A0 is not allowed"),
    ("a.b\u2028", "level 2: whitespace U+2028 is not allowed"),
    ("\u3000", "level 1: whitespace U+3000 is not allowed"),
    ("a\ud800", "level 1: lone surrogate U+D800 is not valid UTF-8"),
    ("a.\udfff", "level 2: lone surrogate U+DFFF is not valid UTF-8"),
]


@pytest.mark.parametrize(("name", "rule"), INVALID_NAMES)
def test_invalid_names(core: SimpleNamespace, name: str, rule: str) -> None:
    expected = f"invalid topic name {name!r}: {rule}"
    with pytest.raises(InvalidTopic) as info:
        core.grammar.validate_topic(name)
    assert str(info.value) == expected
    with pytest.raises(InvalidTopic, match=re.escape(expected)):
        core.grammar.topic_levels(name)


def test_invalid_topic_is_a_value_error(core: SimpleNamespace) -> None:
    with pytest.raises(ValueError):
        core.grammar.validate_topic("a..b")


# --- filters -------------------------------------------------------------------------------

VALID_FILTERS = [
    "#",
    "+",
    "events.#",
    "events.+",
    "events.+.lifecycle",
    "+.+.#",
    "$SYS.#",
    "$SYS.+.stats",
    "events.process.lifecycle",
    "é.+.🎉",
]


@pytest.mark.parametrize("topic_filter", VALID_FILTERS)
def test_valid_filters(core: SimpleNamespace, topic_filter: str) -> None:
    core.grammar.validate_filter(topic_filter)
    assert core.grammar.filter_levels(topic_filter) == topic_filter.split(".")


INVALID_FILTERS = [
    ("", "must not be empty"),
    ("a..#", "level 2 is empty"),
    (".#", "level 1 is empty"),
    ("+.", "level 2 is empty"),
    ("a+", "wildcard '+' must be a whole level"),
    ("+a", "wildcard '+' must be a whole level"),
    ("a#", "wildcard '#' must be a whole level"),
    ("a.b#", "wildcard '#' must be a whole level"),
    ("++", "wildcard '+' must be a whole level"),
    ("#.a", "'#' must be the last level"),
    ("a.#.b", "'#' must be the last level"),
    ("#.#", "'#' must be the last level"),
    ("a.+.\x00", "level 3: NUL is not allowed"),
    ("+.a b", "level 2: whitespace U+0020 is not allowed"),
]


@pytest.mark.parametrize(("topic_filter", "rule"), INVALID_FILTERS)
def test_invalid_filters(core: SimpleNamespace, topic_filter: str, rule: str) -> None:
    expected = f"invalid topic filter {topic_filter!r}: {rule}"
    with pytest.raises(InvalidTopic) as info:
        core.grammar.validate_filter(topic_filter)
    assert str(info.value) == expected
    with pytest.raises(InvalidTopic, match=re.escape(expected)):
        core.grammar.filter_levels(topic_filter)


def test_first_broken_rule_in_reading_order_is_reported(core: SimpleNamespace) -> None:
    with pytest.raises(InvalidTopic, match="level 1: whitespace U\\+0020"):
        core.grammar.validate_topic("a b.\x00.+")
    with pytest.raises(InvalidTopic, match="wildcard '\\+' must be a whole level"):
        core.grammar.validate_filter("a+\x00")
    with pytest.raises(InvalidTopic, match="level 1: NUL is not allowed"):
        core.grammar.validate_filter("\x00+")
    with pytest.raises(InvalidTopic, match="level 2 is empty"):
        core.grammar.validate_topic("a..b c")


# --- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "width", "fits"),
    [("a", 1, 256), ("é", 2, 128), ("日", 3, 85), ("🎉", 4, 64)],
)
def test_default_byte_limit_counts_utf8_bytes(
    core: SimpleNamespace, char: str, width: int, fits: int
) -> None:
    core.grammar.validate_topic(char * fits)
    core.grammar.validate_filter(char * fits)
    over = char * (fits + 1)
    size = width * (fits + 1)
    with pytest.raises(InvalidTopic) as info:
        core.grammar.validate_topic(over)
    assert str(info.value) == (
        f"invalid topic name {over!r}: is {size} UTF-8 bytes, over the limit of 256"
    )


def test_default_level_limit(core: SimpleNamespace) -> None:
    core.grammar.validate_topic(".".join("a" * 16))
    core.grammar.validate_filter(".".join("+" * 15) + ".#")
    name = ".".join("a" * 17)
    with pytest.raises(InvalidTopic) as info:
        core.grammar.validate_topic(name)
    assert str(info.value) == f"invalid topic name {name!r}: has 17 levels, over the limit of 16"


def test_custom_limits(core: SimpleNamespace) -> None:
    grammar = core.grammar
    grammar.validate_topic("ab.cd", max_bytes=5, max_levels=2)
    with pytest.raises(InvalidTopic, match="is 6 UTF-8 bytes, over the limit of 5"):
        grammar.validate_topic("ab.cde", max_bytes=5)
    with pytest.raises(InvalidTopic, match="is 7 UTF-8 bytes, over the limit of 5"):
        grammar.validate_filter("é.+.é", max_bytes=5)
    with pytest.raises(InvalidTopic, match="has 3 levels, over the limit of 2"):
        grammar.validate_filter("a.+.#", max_levels=2)
    assert grammar.topic_levels("a" * 300, 1000, 1) == ["a" * 300]
    assert grammar.filter_levels(".".join("+" * 40), 100, 40) == ["+"] * 40
    with pytest.raises(InvalidTopic, match="has 2 levels, over the limit of 1"):
        grammar.topic_levels("a.b", 1000, 1)


def test_size_is_checked_before_levels_and_level_count_last(core: SimpleNamespace) -> None:
    with pytest.raises(InvalidTopic, match="is 4 UTF-8 bytes, over the limit of 3"):
        core.grammar.validate_topic("a..b", max_bytes=3)
    with pytest.raises(InvalidTopic, match="level 3 is empty"):
        core.grammar.validate_topic("a.b..c", max_levels=2)


# --- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"events", None, 42, ["events"], bytearray(b"a")])
def test_non_str_is_a_type_error(core: SimpleNamespace, value: object) -> None:
    kind = type(value).__name__
    with pytest.raises(TypeError, match=f"^topic name must be str, not {kind}$"):
        core.grammar.validate_topic(value)
    with pytest.raises(TypeError, match=f"^topic filter must be str, not {kind}$"):
        core.grammar.validate_filter(value)
    with pytest.raises(TypeError, match=f"^topic filter must be str, not {kind}$"):
        core.grammar.topic_matches(value, "a")
    with pytest.raises(TypeError, match=f"^topic name must be str, not {kind}$"):
        core.grammar.topic_matches("a", value)
    with pytest.raises(TypeError, match=f"^topic filter must be str, not {kind}$"):
        core.grammar.filter_covers("#", value)


def test_str_subclass_is_accepted(core: SimpleNamespace) -> None:
    class Topic(str):
        pass

    assert core.grammar.topic_levels(Topic("a.b")) == ["a", "b"]
    assert core.grammar.topic_matches(Topic("a.+"), Topic("a.b"))


# --- matching ------------------------------------------------------------------------------

MATCHES = [
    ("events.#", "events", True),
    ("events.#", "events.process", True),
    ("events.#", "events.process.tree.update", True),
    ("events.#", "eventsx", False),
    ("events.#", "other.events", False),
    ("events.+", "events", False),
    ("events.+", "events.process", True),
    ("events.+", "events.process.tree", False),
    ("+", "events", True),
    ("+", "events.process", False),
    ("+.+", "a.b", True),
    ("+.+", "a", False),
    ("a.+.c", "a.b.c", True),
    ("a.+.c", "a.b.d", False),
    ("a.+.#", "a.b", True),
    ("a.+.#", "a", False),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("a.b", "a.b", True),
    ("a.b", "a.b.c", False),
    ("a.b.c", "a.b", False),
    # MQTT: a filter opening with a wildcard never matches a broker ($) topic.
    ("#", "$SYS", False),
    ("#", "$SYS.broker.stats", False),
    ("+", "$SYS", False),
    ("+.broker", "$SYS.broker", False),
    ("+.#", "$SYS.x", False),
    ("$SYS.#", "$SYS", True),
    ("$SYS.#", "$SYS.x", True),
    ("$SYS.+", "$SYS.x", True),
    ("$SYS.broker.stats", "$SYS.broker.stats", True),
    # '$' only matters at the first level.
    ("a.#", "a.$x", True),
    ("a.+", "a.$x", True),
    ("+", "a$", True),
    # Unicode levels compare as they are, case-sensitively, without normalisation.
    ("é.+", "é.日本", True),
    ("🎉.#", "🎉.🎉", True),
    ("Events.#", "events.process", False),
    ("events.#", "EVENTS", False),
    ("\u00e9", "e\u0301", False),
]


@pytest.mark.parametrize(("topic_filter", "name", "expected"), MATCHES)
def test_topic_matches(core: SimpleNamespace, topic_filter: str, name: str, expected: bool) -> None:
    assert core.grammar.topic_matches(topic_filter, name) is expected


def test_topic_matches_validates_both(core: SimpleNamespace) -> None:
    with pytest.raises(InvalidTopic) as info:
        core.grammar.topic_matches("a+", "a")
    assert str(info.value) == "invalid topic filter 'a+': wildcard '+' must be a whole level"
    with pytest.raises(InvalidTopic) as info:
        core.grammar.topic_matches("a.+", "a.+")
    assert str(info.value) == (
        "invalid topic name 'a.+': wildcard '+' is not allowed in a topic name"
    )
    with pytest.raises(InvalidTopic) as info:
        core.grammar.topic_matches("", "")
    assert str(info.value) == "invalid topic filter '': must not be empty"


# --- covering (the subscribe check) --------------------------------------------------------

COVERS = [
    ("events.process.#", "events.process.+", True),
    ("events.process.#", "events.process", True),
    ("events.process.#", "events.process.a.b", True),
    ("events.process.#", "events.process.#", True),
    ("events.process.#", "events.#", False),
    ("events.process.#", "events.+.lifecycle", False),
    ("events.+", "events.x", True),
    ("events.+", "events.+", True),
    ("events.+", "events.x.y", False),
    ("events.+", "events.#", False),
    ("events.+", "events", False),
    ("events.x", "events.+", False),
    ("#", "events.#", True),
    ("#", "+", True),
    ("#", "#", True),
    ("#", "$SYS.x", False),
    ("#", "$SYS.#", False),
    ("+.#", "$SYS.#", False),
    ("+.#", "events.#", True),
    # '#' at the first level matches at least one level, exactly what '+.#' matches.
    ("+.#", "#", True),
    ("#", "+.#", True),
    ("+.+.#", "#", False),
    ("+", "#", False),
    ("+", "$SYS", False),
    ("$SYS.#", "$SYS.broker.stats", True),
    ("$SYS.#", "$SYS", True),
    ("$SYS.#", "+.broker", False),
    ("$SYS.+", "$SYS.#", False),
    ("a.#", "a", True),
    ("a.+.#", "a.#", False),
    ("a.b", "a.b", True),
    ("a.b", "a.b.c", False),
]


@pytest.mark.parametrize(("outer", "inner", "expected"), COVERS)
def test_filter_covers(core: SimpleNamespace, outer: str, inner: str, expected: bool) -> None:
    assert core.grammar.filter_covers(outer, inner) is expected


def test_filter_covers_validates_both(core: SimpleNamespace) -> None:
    with pytest.raises(InvalidTopic) as info:
        core.grammar.filter_covers("#.a", "a")
    assert str(info.value) == "invalid topic filter '#.a': '#' must be the last level"
    with pytest.raises(InvalidTopic) as info:
        core.grammar.filter_covers("#", "a..b")
    assert str(info.value) == "invalid topic filter 'a..b': level 2 is empty"


def test_defaults_are_exported(core: SimpleNamespace) -> None:
    assert core.grammar.DEFAULT_MAX_BYTES == 256
    assert core.grammar.DEFAULT_MAX_LEVELS == 16
