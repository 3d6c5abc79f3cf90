"""The compiled access rights table, on both backends (the ``core`` fixture)."""

from __future__ import annotations

import enum
from types import SimpleNamespace
from typing import cast

import pytest

from eventbus._rights import RightsTable
from eventbus.errors import InvalidTopic

PUBLISH, SUBSCRIBE, ADMIN = 1, 2, 4


# Both tables are typed as the reference twin's: the compiled one has the same API.
def procmond(core: SimpleNamespace) -> RightsTable:
    """The rules the default policy gives the process collector."""
    return cast(
        RightsTable,
        core.rights.RightsTable(
            [
                ("events.process.#", PUBLISH),
                ("control.health.heartbeat", PUBLISH),
                ("control.health.status", PUBLISH),
                ("control.collector.lifecycle", SUBSCRIBE),
                ("control.collector.config", SUBSCRIBE),
                ("control.collector.task.process", SUBSCRIBE),
                ("control.health.diagnostics", SUBSCRIBE),
            ]
        ),
    )


def agent(core: SimpleNamespace) -> RightsTable:
    """The rules the default policy gives the agent."""
    return cast(
        RightsTable,
        core.rights.RightsTable(
            [
                ("control.#", PUBLISH),
                ("events.#", SUBSCRIBE),
                ("control.health.#", SUBSCRIBE),
                ("$SYS.#", SUBSCRIBE),
            ]
        ),
    )


def test_constants(core: SimpleNamespace) -> None:
    assert (core.rights.PUBLISH, core.rights.SUBSCRIBE, core.rights.ADMIN) == (1, 2, 4)


def test_mask_is_the_or_of_matching_rules(core: SimpleNamespace) -> None:
    table = core.rights.RightsTable(
        [("events.#", PUBLISH), ("events.process.+", SUBSCRIBE), ("events.process.x", ADMIN)]
    )
    assert table.mask("events.process.x") == PUBLISH | SUBSCRIBE | ADMIN
    assert table.mask("events.process.y") == PUBLISH | SUBSCRIBE
    assert table.mask("events.process") == PUBLISH
    assert table.mask("events") == PUBLISH
    assert table.mask("control") == 0
    assert table.mask("events.process.x.y") == PUBLISH


def test_collector_rights(core: SimpleNamespace) -> None:
    table = procmond(core)
    assert table.may_publish("events.process.lifecycle")
    assert table.may_publish("events.process")
    assert table.may_publish("control.health.heartbeat")
    assert not table.may_publish("events.network.connection")
    assert not table.may_publish("control.health.diagnostics")
    assert not table.may_publish("control.collector.task.process")
    assert table.may_subscribe("control.collector.task.process")
    assert table.may_subscribe("control.health.diagnostics")
    assert not table.may_subscribe("control.collector.task.+")
    assert not table.may_subscribe("control.collector.#")
    assert not table.may_subscribe("control.collector.task.network")
    assert not table.may_subscribe("events.process.#")  # publish rights do not subscribe


def test_agent_rights(core: SimpleNamespace) -> None:
    table = agent(core)
    assert table.may_publish("control.collector.task.process")
    assert not table.may_publish("events.process.lifecycle")
    assert not table.may_publish("$SYS.broker.stats")
    assert table.may_subscribe("events.process.+")
    assert table.may_subscribe("events.#")
    assert table.may_subscribe("events")
    assert table.may_subscribe("control.health.+")
    assert table.may_subscribe("$SYS.#")
    assert table.may_subscribe("$SYS.client.disconnected")
    assert not table.may_subscribe("#")
    assert not table.may_subscribe("+.process")
    assert not table.may_subscribe("control.#")


def test_dollar_topics_need_a_dollar_rule(core: SimpleNamespace) -> None:
    for rules in ([("#", PUBLISH | SUBSCRIBE)], [("+.#", PUBLISH | SUBSCRIBE)]):
        table = core.rights.RightsTable(rules)
        assert table.mask("$SYS.x") == 0
        assert not table.may_publish("$SYS.x")
        assert not table.may_subscribe("$SYS.#")
        assert not table.may_subscribe("$SYS.x")
        assert table.may_subscribe("events.#")
        assert table.may_subscribe("#")
    table = core.rights.RightsTable([("$SYS.#", SUBSCRIBE)])
    assert table.mask("$SYS.x") == SUBSCRIBE
    assert table.may_subscribe("$SYS.+")
    assert not table.may_subscribe("+.x")


def test_answers_stay_the_same_through_the_caches(core: SimpleNamespace) -> None:
    table = procmond(core)
    topics = [f"events.process.t{index}" for index in range(1500)]
    topics += [f"events.network.t{index}" for index in range(1500)]
    for _ in range(2):  # the second round hits the caches, after evictions
        for topic in topics:
            assert table.may_publish(topic) is topic.startswith("events.process.")
            assert table.may_subscribe(topic) is False
    assert table.may_subscribe("control.health.diagnostics") is True
    assert table.may_subscribe("control.health.diagnostics") is True


def test_rules_are_kept_in_order(core: SimpleNamespace) -> None:
    rules = [("b.#", PUBLISH), ("a", SUBSCRIBE), ("b.#", ADMIN)]
    table = core.rights.RightsTable(iter(rules))
    assert table.rules == tuple(rules)
    assert core.rights.RightsTable([]).rules == ()
    assert core.rights.RightsTable([]).mask("a") == 0


def test_invalid_input(core: SimpleNamespace) -> None:
    with pytest.raises(InvalidTopic) as info:
        core.rights.RightsTable([("a.#.b", PUBLISH)])
    assert str(info.value) == "invalid topic filter 'a.#.b': '#' must be the last level"
    table = agent(core)
    with pytest.raises(InvalidTopic, match="wildcard '#' is not allowed in a topic name"):
        table.may_publish("control.#")
    with pytest.raises(InvalidTopic, match="level 2 is empty"):
        table.mask("control..x")
    with pytest.raises(InvalidTopic, match="wildcard '\\+' must be a whole level"):
        table.may_subscribe("events.a+")
    with pytest.raises(TypeError, match=r"^topic name must be str, not NoneType$"):
        table.may_publish(None)  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(TypeError, match=r"^topic filter must be str, not int$"):
        table.may_subscribe(5)  # type: ignore[arg-type]  # the wrong type is the point


def test_malformed_rules(core: SimpleNamespace) -> None:
    # A rule is a pair: the exception types are the contract, the unpacking's wording is
    # the interpreter's (and differs between the twins).
    with pytest.raises(ValueError):
        core.rights.RightsTable([("a.#",)])
    with pytest.raises(ValueError):
        core.rights.RightsTable([("a.#", 1, 2)])
    with pytest.raises(TypeError):
        core.rights.RightsTable([1])


def test_bits_and_limits_are_checked_in_the_constructor(core: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match=r"^rights bits must be between 0 and 2147483647, not -1$"):
        core.rights.RightsTable([("a", -1)])
    with pytest.raises(ValueError, match=r"not 2147483648$"):
        core.rights.RightsTable([("a", 2**31)])
    with pytest.raises(TypeError):
        core.rights.RightsTable([("a", "1")])
    with pytest.raises(ValueError, match=r"^max_bytes must be at least 1, not 0$"):
        core.rights.RightsTable([], max_bytes=0)
    with pytest.raises(ValueError, match=r"^max_levels must be at least 1, not -3$"):
        core.rights.RightsTable([], max_levels=-3)
    with pytest.raises(TypeError):
        core.rights.RightsTable([], max_levels=2.0)
    huge = core.rights.RightsTable([("a.#", PUBLISH)], max_bytes=2**70, max_levels=2**70)
    assert huge.may_publish("a." + "b." * 100 + "c")
    assert type(huge.mask("a.b")) is int


def test_subscribe_check_uses_the_table_limits(core: SimpleNamespace) -> None:
    long_filter = "events." + "x" * 300
    table = core.rights.RightsTable([("events.#", SUBSCRIBE)], max_bytes=1024)
    assert table.may_subscribe(long_filter)
    assert table.mask(long_filter) == SUBSCRIBE
    small = core.rights.RightsTable([("events.#", SUBSCRIBE)], max_bytes=16, max_levels=2)
    with pytest.raises(InvalidTopic, match="over the limit of 16"):
        small.may_subscribe("events.process.lifecycle")
    with pytest.raises(InvalidTopic, match="has 3 levels, over the limit of 2"):
        small.may_subscribe("events.a.b")


def test_flag_bits(core: SimpleNamespace) -> None:
    class Right(enum.IntFlag):
        PUBLISH = 1
        SUBSCRIBE = 2

    table = core.rights.RightsTable([("a.#", Right.PUBLISH), ("a.b", Right.SUBSCRIBE)])
    assert table.mask("a.b") == Right.PUBLISH | Right.SUBSCRIBE
    assert table.may_publish("a.c")
    assert table.may_subscribe("a.b")
    assert not table.may_subscribe("a.c")
