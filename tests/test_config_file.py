"""The broker's TOML file: [broker] settings beside the policy, typed errors with lines,
flags over the file."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from eventbus import BrokerConfig, ConfigError
from eventbus.acl import DEFAULT_RULE_SET
from eventbus.broker import config_from_toml, load_config
from eventbus.broker.__main__ import _parser, config_from_args

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "eventbus.toml"


def test_the_example_file_loads_with_its_policy() -> None:
    config = load_config(EXAMPLE)
    assert config.address == "/run/daemoneye/eventbus.sock"
    assert config.policy is not None and config.policy.name == "daemoneye-example"
    assert config.policy.principals() == ("agent", "procmond", "netmond", "fsmond", "perfmond")


def test_the_example_file_spells_out_every_default() -> None:
    # Every [broker] key but address is at its default: the file documents them.
    config = dataclasses.replace(load_config(EXAMPLE), address=None, policy=None)
    assert config == BrokerConfig()


def test_a_file_with_only_broker_settings_keeps_the_embedded_policy() -> None:
    config = config_from_toml('[broker]\nmax_outbound_bytes = 4096\nslow_consumer = "disconnect"')
    assert config.policy is None
    assert config.max_outbound_bytes == 4096 and config.slow_consumer == "disconnect"


def test_a_policy_file_alone_is_a_config_file() -> None:
    config = load_config(EXAMPLE.with_name("policy.toml"))
    assert config.policy is not None and config == BrokerConfig(policy=config.policy)
    assert config.policy.name != DEFAULT_RULE_SET


def test_integers_are_accepted_for_seconds_and_group_names_or_ids() -> None:
    config = config_from_toml("[broker]\nheartbeat_interval = 2")
    assert config.heartbeat_interval == 2.0 and isinstance(config.heartbeat_interval, float)
    assert config_from_toml("[broker]\ngroup = 998").socket_group == 998


@pytest.mark.skipif(sys.platform == "win32", reason="Unix groups")
def test_a_group_name_must_exist() -> None:
    import grp

    name = grp.getgrgid(os.getgid()).gr_name
    assert config_from_toml(f'[broker]\ngroup = "{name}"').socket_group == name
    with pytest.raises(ConfigError, match=r"^f:2: \[broker\] group 'no-such-group-x' does not"):
        config_from_toml('[broker]\ngroup = "no-such-group-x"', "f")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[broker]\n\nmax_frame_bytes = 0\n", 3, "[broker] max_frame_bytes must be positive"),
        ('[broker]\nmax_frame_bytes = "1 MiB"\n', 2, "max_frame_bytes must be an integer"),
        ("[broker]\nbudget_pause = true\n", 2, "budget_pause must be an integer or a number"),
        ("[broker]\nmax_connections_per_uid = 1.5\n", 2, "must be an integer"),
        ("[broker]\nflavour = 1\n", 2, "unknown key 'flavour' in [broker]; the keys are: address"),
        ("[broker]\npolicy = 'x.toml'\n", 2, "unknown key 'policy'"),
        ('[broker]\nmetrics = "0.0.0.0:9464"\n', 2, "not a loopback address"),
        ("[brokers]\nx = 1\n", 1, "unknown top-level key or table 'brokers'"),
        ("broker = 3\n", 1, "[broker] must be a table"),
        ("[broker]\nname = \n", 2, "TOML syntax error"),
        (
            '[broker]\n[principals.agent]\nany_user = true\npublish = ["$SYS.#"]\n',
            4,
            "can never match",
        ),
        ("[broker]\n[roles.r]\npublish = []\n[flavour]\n", 4, "unknown top-level key"),
    ],
)
def test_every_error_is_a_config_error_naming_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_toml(text, "eventbus.toml")
    assert str(caught.value).startswith(f"eventbus.toml:{line}: "), caught.value
    assert message in str(caught.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_flags_override_the_file_and_the_file_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "eventbus.toml"
    path.write_text(
        '[broker]\naddress = "/from/file.sock"\nmax_frame_bytes = 2048\nstats_interval = 3\n'
        'slow_consumer = "disconnect"\n'
    )
    args = _parser().parse_args(
        ["--config", str(path), "--max-frame-bytes", "4096", "--slow-consumer", "drop"]
    )
    config = config_from_args(args)
    assert config.max_frame_bytes == 4096  # the flag
    assert config.slow_consumer == "drop"  # the flag
    assert config.stats_interval == 3.0  # the file
    assert config.address == "/from/file.sock"  # the file
    assert config.max_outbound_bytes == BrokerConfig().max_outbound_bytes  # the default
    assert config_from_args(_parser().parse_args([])) == BrokerConfig()
