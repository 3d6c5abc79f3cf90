"""Access control: the default policy, bindings to OS credentials, grants, policy files."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import eventbus
from eventbus import EventBusError, InvalidTopic, PermissionDenied, PolicyError
from eventbus.acl import (
    DEFAULT_RULE_SET,
    Binding,
    Grant,
    Policy,
    PrincipalRule,
    default_policy,
)

UID = 4242
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy.toml"


@dataclass(frozen=True)
class Peer:
    """Fake OS credentials of a connecting process."""

    uid: int | None = UID
    gid: int | None = 100
    pid: int | None = 321
    exe: str | None = None
    groups: frozenset[int] = field(default_factory=frozenset)
    cgroup: str | None = None
    unit: str | None = None
    sid: str | None = None
    group_sids: frozenset[str] = field(default_factory=frozenset)


# A user SID and a group SID (BUILTIN\Users) for the Windows bindings.
USER_SID = "S-1-5-21-1004336348-1177238915-682003330-1001"
USERS_SID = "S-1-5-32-545"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return default_policy(uid=UID)


def grant(policy: Policy, principal: str) -> Grant:
    return policy.authenticate(principal, Peer())


# --- The default policy grants exactly DESIGN §3 --------------------------------------------


def test_default_policy_principals(policy: Policy) -> None:
    assert policy.principals() == (
        "agent",
        "procmond",
        "netmond",
        "fsmond",
        "perfmond",
        "bridge",
    )
    assert policy.name == DEFAULT_RULE_SET


def test_default_policy_binds_everyone_to_the_uid(policy: Policy) -> None:
    for name in policy.principals():
        assert policy.rule(name).binding == Binding(uids=frozenset({UID}))


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no uids on this platform")
def test_default_policy_defaults_to_own_uid() -> None:
    own = default_policy()
    assert own.rule("agent").binding.uids == frozenset({os.getuid()})


@pytest.mark.skipif(sys.platform != "win32", reason="Windows binds the user SID")
def test_default_policy_defaults_to_own_sid_on_windows() -> None:
    from eventbus.transport import local_credentials

    own = local_credentials().sid
    assert own is not None and own.startswith("S-1-"), own
    assert default_policy().rule("agent").binding == Binding(sids=frozenset({own}))


def test_default_policy_for_a_given_sid() -> None:
    binding = default_policy(sid=USER_SID).rule("procmond").binding
    assert binding == Binding(sids=frozenset({USER_SID}))
    assert binding.admits(Peer(uid=None, gid=None, sid=USER_SID))
    assert not binding.admits(Peer(sid="S-1-5-21-1004336348-1177238915-682003330-1002"))


def test_agent_rights(policy: Policy) -> None:
    agent = grant(policy, "agent")
    assert agent.admin
    assert agent.may_publish("control.collector.task.process")
    assert agent.may_publish("control.collector.lifecycle")
    assert agent.may_publish("control.health.diagnostics")
    assert not agent.may_publish("events.process.lifecycle")
    for topic_filter in ("events.process.+", "events.#", "$SYS.#", "$SYS.client.+"):
        assert agent.may_subscribe(topic_filter), topic_filter
    assert agent.may_subscribe("control.health.heartbeat")
    assert not agent.may_subscribe("control.collector.task.process")
    assert not agent.may_subscribe("#")


def test_procmond_publish(policy: Policy) -> None:
    procmond = grant(policy, "procmond")
    assert procmond.may_publish("events.process.lifecycle")
    assert procmond.may_publish("events.process.tree")
    assert procmond.may_publish("control.health.heartbeat")
    assert procmond.may_publish("control.health.status")
    assert not procmond.may_publish("control.collector.config")
    assert not procmond.may_publish("control.health.diagnostics")
    assert not procmond.may_publish("events.network.x")
    assert not procmond.may_publish("$SYS.x")
    assert not procmond.admin


def test_procmond_subscribe(policy: Policy) -> None:
    procmond = grant(policy, "procmond")
    assert procmond.may_subscribe("control.collector.task.process")
    assert procmond.may_subscribe("control.collector.lifecycle")
    assert procmond.may_subscribe("control.collector.config")
    assert procmond.may_subscribe("control.health.diagnostics")
    assert not procmond.may_subscribe("control.collector.task.network")
    assert not procmond.may_subscribe("control.collector.task.+")
    assert not procmond.may_subscribe("events.#")
    assert not procmond.may_subscribe("events.process.#")
    assert not procmond.may_subscribe("$SYS.#")


def test_netmond_namespace(policy: Policy) -> None:
    netmond = grant(policy, "netmond")
    assert netmond.may_publish("events.network.flow")
    assert netmond.may_publish("events.network.dns.query")
    assert netmond.may_publish("events.network")
    assert not netmond.may_publish("events.process.lifecycle")
    assert netmond.may_subscribe("control.collector.task.network")
    assert not netmond.may_subscribe("control.collector.task.process")


@pytest.mark.parametrize(
    ("principal", "kind"),
    [("procmond", "process"), ("netmond", "network"), ("fsmond", "filesystem"),
     ("perfmond", "performance")],
)  # fmt: skip
def test_no_cross_namespace_rights(policy: Policy, principal: str, kind: str) -> None:
    collector = grant(policy, principal)
    for other in ("process", "network", "filesystem", "performance"):
        mine = other == kind
        assert collector.may_publish(f"events.{other}.x") is mine
        assert collector.may_subscribe(f"control.collector.task.{other}") is mine
        assert not collector.may_subscribe(f"events.{other}.#")


def test_bridge_rights(policy: Policy) -> None:
    bridge = grant(policy, "bridge")
    assert not bridge.admin
    assert bridge.may_publish("control.collector.task.process")
    assert bridge.may_publish("$SYS.bridge.overflow")
    assert not bridge.may_publish("$SYS.broker.stats")
    assert not bridge.may_publish("events.process.lifecycle")
    for topic_filter in ("events.#", "control.health.#", "$SYS.client.#"):
        assert bridge.may_subscribe(topic_filter)
    assert not bridge.may_subscribe("$SYS.#")
    assert not bridge.may_subscribe("control.collector.task.process")
    # Only the bridge may report under $SYS.bridge: no other default principal names it.
    for name in ("agent", "procmond", "netmond", "fsmond", "perfmond"):
        assert not grant(policy, name).may_publish("$SYS.bridge.stats")


def test_reserved_topics_are_never_publishable() -> None:
    everything = Grant("root", ("#", "$SYS.#", "+.x"), ("#",), True, "test rules")
    assert everything.may_publish("events.x")
    assert not everything.may_publish("$SYS.x")
    assert not everything.may_publish("$SYS")
    assert not everything.may_publish("$other.x")
    with pytest.raises(PermissionDenied, match="reserved for the broker"):
        everything.check_publish("$SYS.broker.stats")
    # '#' does not reach $ topics for subscribing either (MQTT rule); '$SYS.#' is explicit.
    assert not Grant("p", (), ("#",), False, "r").may_subscribe("$SYS.#")
    assert Grant("p", (), ("$SYS.#",), False, "r").may_subscribe("$SYS.client.+")


def test_invalid_topic_is_not_a_denial(policy: Policy) -> None:
    with pytest.raises(InvalidTopic):
        grant(policy, "agent").check_publish("control..x")
    with pytest.raises(InvalidTopic):
        grant(policy, "agent").may_subscribe("events.#.x")


# --- Denials name principal, input and rule set ----------------------------------------------


def test_denials_name_the_rule_set(policy: Policy) -> None:
    procmond = grant(policy, "procmond")
    with pytest.raises(PermissionDenied) as denied:
        procmond.check_publish("control.collector.config")
    message = str(denied.value)
    assert "'procmond'" in message
    assert "'control.collector.config'" in message
    assert f"rule set {DEFAULT_RULE_SET!r}" in message
    with pytest.raises(PermissionDenied, match=r"'events\.#'.*rule set 'embedded default"):
        procmond.check_subscribe("events.#")
    with pytest.raises(PermissionDenied, match=r"procmond.*list clients.*admin.*rule set"):
        procmond.check_admin("list clients")
    grant(policy, "agent").check_admin("list clients")
    procmond.check_publish("events.process.lifecycle")
    procmond.check_subscribe("control.collector.task.process")


def test_permission_denied_is_an_eventbus_error() -> None:
    assert issubclass(PermissionDenied, EventBusError)


# --- Authentication against OS credentials -------------------------------------------------


def test_wrong_uid_is_denied_with_the_reason(policy: Policy) -> None:
    with pytest.raises(PermissionDenied) as denied:
        policy.authenticate("procmond", Peer(uid=1000))
    message = str(denied.value)
    assert "'procmond'" in message
    assert f"uid 1000 not in [{UID}]" in message
    assert DEFAULT_RULE_SET in message


def test_unknown_uid_never_satisfies_a_binding(policy: Policy) -> None:
    with pytest.raises(PermissionDenied, match="uid is unknown"):
        policy.authenticate("agent", Peer(uid=None))


def test_unknown_principal_is_denied(policy: Policy) -> None:
    with pytest.raises(PermissionDenied, match=r"principal 'intruder' is not defined.*rule set"):
        policy.authenticate("intruder", Peer())


def test_authenticate_returns_the_principal_grant(policy: Policy) -> None:
    procmond = policy.authenticate("procmond", Peer())
    assert procmond.principal == "procmond"
    assert procmond.rule_set == DEFAULT_RULE_SET
    assert "events.process.#" in procmond.publish
    limited = policy.authenticate("procmond", Peer(), max_bytes=1024, max_levels=32)
    assert limited.max_levels == 32
    assert limited.may_publish("events.process." + ".".join("x" * 20))


def test_executable_binding_resolves_symlinks(tmp_path: Path) -> None:
    link = tmp_path / "procmond"
    try:
        link.symlink_to(sys.executable)
    except OSError as exc:  # unprivileged Windows may not create symlinks
        pytest.skip(f"cannot create a symlink here: {exc}")
    if not link.is_symlink():  # Wine reports success and makes none
        pytest.skip("the platform reported a symlink created but made none (Wine)")
    real = os.path.realpath(sys.executable)
    binding = Binding(executables=frozenset({str(link)}))
    assert binding.admits(Peer(exe=real))
    assert binding.admits(Peer(exe=str(link)))
    assert not binding.admits(Peer(exe=None))
    other = tmp_path / "other"
    other.write_text("")
    policy = Policy([PrincipalRule("procmond", binding)], name="exe rules")
    with pytest.raises(PermissionDenied, match=r"executable .*other.* not allowed.*exe rules"):
        policy.authenticate("procmond", Peer(exe=str(other)))
    assert policy.authenticate("procmond", Peer(exe=real)).principal == "procmond"


def test_gid_binding_accepts_supplementary_groups() -> None:
    binding = Binding(gids=frozenset({998}))
    assert binding.admits(Peer(gid=998))
    assert binding.admits(Peer(gid=100, groups=frozenset({4, 998})))
    assert not binding.admits(Peer(gid=100, groups=frozenset({4})))
    assert not binding.admits(Peer(gid=None))
    assert "not in [998]" in (binding.refusal(Peer(gid=100)) or "")


def test_sid_binding_takes_the_user_sid_or_a_group_sid() -> None:
    binding = Binding(sids=frozenset({USER_SID, USERS_SID}))
    assert binding.admits(Peer(sid=USER_SID))
    assert binding.admits(Peer(sid="S-1-5-21-1-2-3-1002", group_sids=frozenset({USERS_SID})))
    assert not binding.admits(Peer(sid="S-1-5-21-1-2-3-1002", group_sids=frozenset({"S-1-1-0"})))
    assert binding.refusal(Peer(sid="S-1-5-21-1-2-3-1002")) == (
        f"user SID S-1-5-21-1-2-3-1002 and its groups' SIDs not in [{USER_SID}, {USERS_SID}]"
    )
    assert binding.refusal(Peer(sid=None)) == (
        "the peer's SIDs are unknown and the binding requires one"
    )
    assert binding.describe() == f"sid [{USER_SID}, {USERS_SID}]"


@pytest.mark.parametrize(
    "sid",
    [
        "s-1-5-32-545",
        "S-1-5",
        "S-2-5-32",
        "S-1-5-32-545)(A;;GA;;;WD",
        "S-1-5-4294967296",
        "S-1-5-21-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
        "Users",
        "",
    ],
)
def test_malformed_sids_are_refused(sid: str) -> None:
    with pytest.raises(ValueError, match="is not a SID like"):
        Binding(sids=frozenset({sid}))


def test_every_constraint_must_hold() -> None:
    binding = Binding(uids=frozenset({1}), gids=frozenset({2}))
    assert binding.admits(Peer(uid=1, gid=2))
    assert not binding.admits(Peer(uid=1, gid=3))
    assert not binding.admits(Peer(uid=3, gid=2))
    assert Binding().admits(Peer(uid=None, gid=None))


def test_relative_executable_binding_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        Binding(executables=frozenset({"bin/procmond"}))


def test_unit_binding_matches_the_unit_name_exactly() -> None:
    binding = Binding(units=frozenset({"daemoneye-procmond.service"}))
    assert binding.admits(Peer(unit="daemoneye-procmond.service"))
    assert not binding.admits(Peer(unit="daemoneye-procmond.scope"))
    assert not binding.admits(Peer(unit="daemoneye-procmond.service2"))
    assert binding.refusal(Peer(unit="other.service")) == (
        "unit 'other.service' not in ['daemoneye-procmond.service']"
    )
    assert binding.refusal(Peer(unit=None)) == (
        "the peer's systemd unit is unknown and the binding requires one"
    )


@pytest.mark.parametrize(
    ("cgroup", "admitted"),
    [
        ("/system.slice/daemoneye.service", True),
        ("/system.slice/daemoneye.service/procmond", True),
        ("/system.slice/daemoneye.service/a/b", True),
        ("/system.slice/daemoneye.service2", False),
        ("/system.slice/daemoneye.servic", False),
        ("/system.slice", False),
        ("/", False),
        ("/user.slice/system.slice/daemoneye.service", False),
    ],
)
def test_cgroup_binding_matches_the_path_or_below_it(cgroup: str, admitted: bool) -> None:
    binding = Binding(cgroups=frozenset({"/system.slice/daemoneye.service"}))
    assert binding.admits(Peer(cgroup=cgroup)) is admitted
    if not admitted:
        assert binding.refusal(Peer(cgroup=cgroup)) == (
            f"cgroup {cgroup!r} is not at or below any of ['/system.slice/daemoneye.service']"
        )


def test_root_cgroup_binding_admits_every_known_cgroup() -> None:
    binding = Binding(cgroups=frozenset({"/"}))
    assert binding.admits(Peer(cgroup="/"))
    assert binding.admits(Peer(cgroup="/user.slice/user-1000.slice/session-2.scope"))
    assert not binding.admits(Peer(cgroup=None))


def test_unresolved_cgroup_never_satisfies_a_binding() -> None:
    binding = Binding(cgroups=frozenset({"/system.slice"}))
    assert binding.refusal(Peer(cgroup=None)) == (
        "the peer's cgroup is unknown and the binding requires one"
    )


def test_unit_and_cgroup_bindings_add_to_the_others() -> None:
    binding = Binding(
        uids=frozenset({UID}),
        units=frozenset({"procmond.service"}),
        cgroups=frozenset({"/system.slice"}),
    )
    inside = Peer(unit="procmond.service", cgroup="/system.slice/procmond.service")
    assert binding.admits(inside)
    assert not binding.admits(Peer(uid=1, unit=inside.unit, cgroup=inside.cgroup))
    assert not binding.admits(Peer(unit="procmond.service", cgroup="/user.slice/procmond.service"))
    assert binding.describe() == ("uid [4242], unit ['procmond.service'], cgroup ['/system.slice']")
    policy = Policy([PrincipalRule("procmond", binding)], name="unit rules")
    with pytest.raises(PermissionDenied) as refused:
        policy.authenticate(
            "procmond", Peer(pid=77, unit="netmond.service", cgroup="/system.slice")
        )
    assert str(refused.value) == (
        "peer (pid 77) may not act as principal 'procmond': unit 'netmond.service' not in "
        "['procmond.service'] (rule set 'unit rules')"
    )


@pytest.mark.parametrize(
    ("field_name", "value", "words"),
    [
        ("units", "procmond", "not a systemd unit name"),
        ("units", "system.slice", "not a systemd unit name"),
        ("units", "a/b.service", "not a systemd unit name"),
        ("units", ".service", "not a systemd unit name"),
        ("cgroups", "system.slice", "not an absolute cgroup path"),
        ("cgroups", "/system.slice/", "not an absolute cgroup path"),
        ("cgroups", "/system.slice//x", "not an absolute cgroup path"),
        ("cgroups", "/system.slice/../x", "not an absolute cgroup path"),
    ],
)
def test_malformed_unit_or_cgroup_binding_is_refused(
    field_name: str, value: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        fields: dict[str, Any] = {field_name: frozenset({value})}
        Binding(**fields)


# --- Policy files ---------------------------------------------------------------------------


def test_example_file_reproduces_the_default_policy() -> None:
    loaded = Policy.load(EXAMPLE)
    default = default_policy(uid=998)
    assert loaded.name == "daemoneye-example"
    assert loaded.principals() == default.principals()
    for name in default.principals():
        got, want = loaded.rule(name), default.rule(name)
        assert got.binding == want.binding, name
        assert set(got.publish) == set(want.publish), name
        assert set(got.subscribe) == set(want.subscribe), name
        assert got.admin == want.admin, name


# An absolute path on this platform (since 3.13, "/usr/..." is not one on Windows).
EXE = r"C:\daemoneye\procmond.exe" if sys.platform == "win32" else "/usr/libexec/daemoneye/procmond"


def test_policy_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        """
[roles.reporter]
publish = ["control.health.heartbeat"]

[principals.procmond]
uid = [1000, 1001]
gid = 50
executable = '@EXE@'
roles = ["reporter"]
publish = ["events.process.#", "control.health.heartbeat"]
subscribe = ["control.collector.task.process"]

[principals]
watcher = { any_user = true, subscribe = ["events.#"] }

[principals.netmond]
unit = "daemoneye-netmond.service"
cgroup = ["/system.slice/daemoneye-netmond.service", "/system.slice/daemoneye.slice"]
publish = ["events.network.#"]
""".replace("@EXE@", EXE),
        encoding="utf-8",
    )
    policy = Policy.load(path)
    assert policy.name == str(path)
    assert policy.principals() == ("procmond", "watcher", "netmond")
    assert policy.rule("netmond").binding == Binding(
        units=frozenset({"daemoneye-netmond.service"}),
        cgroups=frozenset(
            {"/system.slice/daemoneye-netmond.service", "/system.slice/daemoneye.slice"}
        ),
    )
    procmond = policy.rule("procmond")
    assert procmond.binding == Binding(
        uids=frozenset({1000, 1001}),
        gids=frozenset({50}),
        executables=frozenset({EXE}),
    )
    assert procmond.publish == ("events.process.#", "control.health.heartbeat")
    assert procmond.subscribe == ("control.collector.task.process",)
    assert not procmond.admin
    watcher = policy.authenticate("watcher", Peer(uid=None, gid=None))
    assert watcher.may_subscribe("events.network.+")
    assert not watcher.may_publish("events.x")
    with pytest.raises(PermissionDenied, match=re.escape(f"rule set {str(path)!r}")):
        watcher.check_publish("events.x")
    assert "procmond" in policy.describe()


@pytest.mark.skipif(sys.platform == "win32", reason="no user database")
def test_user_and_group_names_are_resolved() -> None:
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(os.getgid())
    text = f'[principals.p]\nuid = ["{user.pw_name}"]\ngid = ["{group.gr_name}"]\n'
    binding = Policy.from_toml(text).rule("p").binding
    assert binding.uids == frozenset({user.pw_uid})
    assert binding.gids == frozenset({group.gr_gid})


@pytest.mark.skipif(sys.platform != "win32", reason="Windows refuses user and group names")
def test_names_are_refused_on_windows() -> None:
    for key, value, what in (("uid", "root", "user"), ("gid", "wheel", "group")):
        with pytest.raises(PolicyError) as refused:
            Policy.from_toml(f"[principals.p]\n{key} = ['{value}']\n", name="site.toml")
        assert str(refused.value).startswith(
            f"site.toml:2: principal 'p' {key}: {what} name '{value}' cannot be resolved on Windows"
        ), refused.value
        assert "bind the" in str(refused.value)


def test_sid_bindings_in_a_policy_file() -> None:
    text = f"""
[principals.agent]
sid = "{USER_SID}"
publish = ["control.#"]
[principals.procmond]
sid = ["{USERS_SID}", "{USER_SID}"]
publish = ["events.process.#"]
"""
    policy = Policy.from_toml(text, name="windows.toml")
    assert policy.rule("agent").binding == Binding(sids=frozenset({USER_SID}))
    assert policy.rule("procmond").binding.sids == frozenset({USERS_SID, USER_SID})
    member = Peer(uid=None, gid=None, sid="S-1-5-21-1-2-3-1002", group_sids=frozenset({USERS_SID}))
    assert policy.authenticate("procmond", member).principal == "procmond"
    with pytest.raises(PermissionDenied, match=r"may not act as principal 'agent': user SID"):
        policy.authenticate("agent", member)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
    assert issubclass(PolicyError, EventBusError)


GOOD = '[principals.p]\nuid = 0\npublish = ["events.x"]\n'

# (toml text, line the error names, words the message must contain)
# User and group names resolve through the POSIX user database; Windows refuses every name
# (test_names_are_refused_on_windows).
USER_DATABASE = pytest.mark.skipif(sys.platform == "win32", reason="no POSIX user database")

BAD_FILES = [
    pytest.param('[principals.p]\nuid = 0\npublish = ["a" "b"]\n', 3, "TOML syntax", id="syntax"),
    pytest.param('[principals.p]\nuid = 0\nadmin = tru\n', 3, "TOML syntax", id="bad-value"),
    pytest.param('[principals.p]\nuid = 0\npublish = ["a",\n', 3, "TOML syntax", id="unclosed"),
    pytest.param(GOOD + "\n[principal.q]\nuid = 0\n", 5, "unknown top-level", id="top-table"),
    pytest.param("rules = 1\n" + GOOD, 1, "'rules'", id="top-key"),
    pytest.param('[policy]\nname = "x"\nversion = 2\n' + GOOD, 3, "'version'", id="policy-key"),
    pytest.param("[policy]\nname = 3\n" + GOOD, 2, "name", id="policy-name-type"),
    pytest.param(GOOD + "publsh = []\n", 4, "unknown key 'publsh'", id="principal-typo"),
    pytest.param(
        "[principals.p]\nuid = 0\n\n\nsubscribe = 'events.#'\n", 5, "array of strings",
        id="filters-not-array",
    ),
    pytest.param(
        "[principals.p]\nuid = 0\npublish = ['a', 2]\n", 3, "item 2 is an integer",
        id="filter-item-type",
    ),
    pytest.param("[principals.p]\nuid = 0\nadmin = 'yes'\n", 3, "true or false", id="admin-type"),
    pytest.param(
        "[principals.p]\nuid = 0\nsubscribe = ['events.#.x']\n", 3, "'#' must be the last",
        id="invalid-filter",
    ),
    pytest.param(
        "[principals.p]\nuid = 0\npublish = ['$SYS.#']\n", 3, "reserved for the broker",
        id="reserved-publish",
    ),
    pytest.param("[principals.p]\nuid = 0\nroles = ['collector']\n", 3, "unknown role 'collector'",
                 id="unknown-role"),
    pytest.param(
        "[roles.r]\npublish = ['a']\nuid = 0\n" + GOOD, 3, "unknown key 'uid' in role",
        id="role-key",
    ),
    pytest.param(
        "[roles.r]\nsubscribe = ['a+']\n" + GOOD, 2, "must be a whole level", id="role-filter",
    ),
    pytest.param(
        "[principals.p]\nuid = ['no-such-user-xyz']\n", 2, "unknown user 'no-such-user-xyz'",
        id="unknown-user", marks=USER_DATABASE,
    ),
    pytest.param(
        "[principals.p]\nuid = 0\ngid = ['no-such-group-xyz']\n", 3,
        "unknown group 'no-such-group-xyz'", id="unknown-group", marks=USER_DATABASE,
    ),
    pytest.param(
        "[principals.p]\nsid = ['S-1-5-32-545', 'Users']\n", 2,
        "principal 'p' sid: 'Users' is not a SID like", id="sid-name",
    ),
    pytest.param("[principals.p]\nsid = 545\n", 2, "sid must be strings", id="sid-type"),
    pytest.param("[principals.p]\nuid = -1\n", 2, "out of range", id="negative-uid"),
    pytest.param("[principals.p]\nuid = true\n", 2, "integers or names", id="bool-uid"),
    pytest.param("[principals.p]\nuid = []\n", 2, "must not be empty", id="empty-uid"),
    pytest.param(
        "[principals.p]\nexecutable = ['bin/procmond']\n", 2, "not an absolute path",
        id="relative-exe",
    ),
    pytest.param(
        "# comment\n[principals.p]\npublish = ['events.x']\n", 2, "has no binding",
        id="no-binding",
    ),
    pytest.param(
        "[principals.p]\nuid = 0\nany_user = true\n", 3, "contradicts", id="any-user-and-uid",
    ),
    pytest.param("[principals.p]\nany_user = 1\n", 2, "true or false", id="any-user-type"),
    pytest.param("[policy]\nname = 'x'\n\n[principals]\n", 4, "no principals", id="empty"),
    pytest.param("", 1, "no principals", id="empty-file"),
    pytest.param("principals = 3\n", 1, "must be a table", id="principals-type"),
    pytest.param(
        "[principals]\np = { uid = 0, publish = ['a..b'] }\n", 2, "level 2 is empty",
        id="inline-table",
    ),
    pytest.param(
        "[principals]\np.uid = 0\np.subscribe = [\n  'ok',\n  'bad..x',\n]\n", 3,
        "level 2 is empty", id="dotted-multiline",
    ),
    pytest.param(
        "principals.p.uid = 0\nprincipals.p.admin = 'no'\n", 2, "true or false",
        id="dotted-top-level",
    ),
    pytest.param(
        "[principals.'p q']\nuid = 0\n", 1, "not printable", id="principal-name",
    ),
    pytest.param(
        "[principals.p]\n\nunit = 'procmond'\n", 3,
        "principal 'p' unit: unit 'procmond' is not a systemd unit name ending in .service",
        id="unit-suffix",
    ),
    pytest.param(
        "[principals.p]\nunit = ['a.service', 'b.slice']\n", 2, "unit 'b.slice' is not",
        id="unit-slice",
    ),
    pytest.param("[principals.p]\nunit = []\n", 2, "must not be empty", id="empty-unit"),
    pytest.param("[principals.p]\nunit = 3\n", 2, "unit must be strings", id="unit-type"),
    pytest.param(
        "[principals.p]\nuid = 0\ncgroup = 'system.slice/x.service'\n", 3,
        "principal 'p' cgroup: cgroup 'system.slice/x.service' is not an absolute cgroup path",
        id="cgroup-relative",
    ),
    pytest.param(
        "[principals.p]\ncgroup = ['/system.slice/']\n", 2, "no trailing '/'",
        id="cgroup-trailing-slash",
    ),
    pytest.param(
        "[principals.p]\ncgroup = ['/a/../b']\n", 2, "not an absolute cgroup path",
        id="cgroup-dotdot",
    ),
    pytest.param("[principals.p]\ncgroup = [1]\n", 2, "cgroup must be strings", id="cgroup-type"),
    pytest.param(
        "[principals.p]\nany_user = true\nunit = 'a.service'\n", 2, "contradicts",
        id="any-user-and-unit",
    ),
    pytest.param(
        "[principals]\np = { cgroup = '/ok', publish = ['events.x'] }\nq = { unit = 'x' }\n", 3,
        "principal 'q' unit", id="unit-inline-table",
    ),
    # What tomllib or the user database let through still names a line (fuzz/policy.py).
    pytest.param(
        '[principals.p]\nuid = ["ro\\u0000ot"]\n', 2, "unknown user 'ro\\x00ot'", id="nul-user",
        marks=USER_DATABASE,
    ),
    pytest.param(
        '[principals.p]\nuid = 0\ngid = ["w\\u0000"]\n', 3, "unknown group", id="nul-group",
        marks=USER_DATABASE,
    ),
    pytest.param(
        "[principals.p]\nuid = 0\npublish = [\n" + "[" * 5000 + "\n", 4, "nested too deeply",
        id="deep-nesting",
    ),
    pytest.param(
        "[principals.p]\n\nuid = " + "1" * 5000 + "\n", 3, "TOML value error", id="huge-integer",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "words"), BAD_FILES)
def test_invalid_policy_names_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyError) as error:
        Policy.from_toml(text, name="site.toml")
    message = str(error.value)
    assert message.startswith(f"site.toml:{line}: "), message
    assert words in message, message


def test_invalid_filter_error_carries_the_topic_reason() -> None:
    text = "[principals.p]\nuid = 0\npublish = ['events.x', 'events..y']\n"
    with pytest.raises(PolicyError, match=r"principal 'p' publish: invalid topic filter"):
        Policy.from_toml(text)


def test_roles_are_merged_into_the_principal() -> None:
    text = """
[roles.health]
publish = ["control.health.heartbeat", "control.health.status"]
[roles.ops]
admin = true
[principals.p]
uid = 0
roles = ["health", "ops"]
publish = ["control.health.heartbeat"]
"""
    rule = Policy.from_toml(text).rule("p")
    assert rule.publish == ("control.health.heartbeat", "control.health.status")
    assert rule.admin


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[principals.p]\nuid = 0\nflavour = 'x'\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(path))}:3: unknown key 'flavour'"):
        Policy.load(path)


def test_duplicate_principal_in_code_is_refused() -> None:
    rule = PrincipalRule("p", Binding())
    with pytest.raises(ValueError, match="defined twice"):
        Policy([rule, rule], name="r")


# What the client may pull in: the grant, never the broker's policy machinery.
_POLICY_ONLY_MODULES = ("tomllib", "tomli", "pwd", "grp", "eventbus.acl._policy_file")


def test_importing_the_client_loads_no_policy_file_machinery() -> None:
    code = (
        "import sys, eventbus.client\n"
        f"print(sorted(m for m in {_POLICY_ONLY_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def _imported_modules(path: Path, package: str) -> set[str]:
    """The absolute names of the modules ``path`` (a module of ``package``) imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_grant_module_imports_nothing_of_the_policy_side() -> None:
    source = Path(eventbus.__file__).parent / "acl" / "_grant.py"
    imported = _imported_modules(source, "eventbus.acl")
    forbidden = {
        "tomllib",
        "tomli",
        "pwd",
        "grp",
        "eventbus.acl._policy",
        "eventbus.acl._policy_file",
    }
    assert not imported & forbidden


def test_the_client_imports_only_the_grant_of_access_control() -> None:
    client = Path(eventbus.__file__).parent / "client"
    for source in sorted(client.glob("*.py")):
        imported = _imported_modules(source, "eventbus.client")
        acl = {name for name in imported if name.startswith("eventbus.acl")}
        assert acl <= {"eventbus.acl._grant", "eventbus.acl._grant.Grant"}, source.name
