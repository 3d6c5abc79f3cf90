"""Broker settings: every value out of range is refused naming the field and the value."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import eventbus
from eventbus import BrokerConfig, ConfigError
from eventbus.broker.__main__ import main

POSITIVE = [
    "max_frame_bytes",
    "max_topic_bytes",
    "max_topic_levels",
    "max_outbound_bytes",
    "memory_budget_bytes",
    "max_outbound_bytes_per_uid",
    "max_connections_per_uid",
    "max_subscriptions_per_uid",
    "max_subscriptions_per_connection",
    "hello_timeout",
    "heartbeat_interval",
]


def test_the_defaults_are_valid() -> None:
    BrokerConfig()


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("value", [0, -1])
def test_limits_and_intervals_must_be_positive(name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"^BrokerConfig\.{name} must be positive, not {value}$"):
        fields: dict[str, Any] = {name: value}
        BrokerConfig(**fields)


def test_the_message_of_the_issue() -> None:
    with pytest.raises(ConfigError) as caught:
        BrokerConfig(max_outbound_bytes=-1)
    assert str(caught.value) == "BrokerConfig.max_outbound_bytes must be positive, not -1"


def test_max_frame_bytes_must_fit_the_length_prefix() -> None:
    BrokerConfig(max_frame_bytes=(1 << 32) - 1)
    with pytest.raises(
        ConfigError,
        match=r"^BrokerConfig\.max_frame_bytes must fit the 4-byte length prefix "
        r"\(at most 4294967295\), not 4294967296$",
    ):
        BrokerConfig(max_frame_bytes=1 << 32)


def test_slow_consumer_is_drop_or_disconnect() -> None:
    BrokerConfig(slow_consumer="disconnect")
    with pytest.raises(
        ConfigError, match=r"^BrokerConfig\.slow_consumer must be 'drop' or 'disconnect', not 'x'$"
    ):
        BrokerConfig(slow_consumer="x")  # type: ignore[arg-type]


def test_budget_pause_may_be_zero_but_not_negative() -> None:
    BrokerConfig(budget_pause=0)
    with pytest.raises(
        ConfigError, match=r"^BrokerConfig\.budget_pause must not be negative, not -0\.5$"
    ):
        BrokerConfig(budget_pause=-0.5)


def test_config_error_is_a_value_error_and_an_eventbus_error() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConfigError, eventbus.EventBusError)
    assert "ConfigError" in eventbus.__all__


def test_there_is_no_catch_all_extra_field() -> None:
    assert "extra" not in {f.name for f in dataclasses.fields(BrokerConfig)}


def test_the_command_line_exits_1_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--max-outbound-bytes", "-1"]) == 1
    err = capsys.readouterr().err
    assert err == "eventbus broker: BrokerConfig.max_outbound_bytes must be positive, not -1\n"
