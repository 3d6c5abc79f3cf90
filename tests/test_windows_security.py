"""Windows identity and pipe security: SID bindings, the pipe's DACL, remote clients refused.

The SDDL and token-group rules are plain functions, tested everywhere; the rest needs a
named pipe and runs on Windows (or under Wine). Wine records a pipe's security descriptor
but does not enforce it, and has no remote clients: what a real Windows alone can show
(another user kept out) skips under Wine, and a remote client cannot be tried locally at
all, so the flag that refuses one is checked on every CreateNamedPipe call instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import eventbus
from eventbus import Broker, BrokerConfig, EventBusError, PermissionDenied
from eventbus.acl import Binding, Policy, PrincipalRule
from eventbus.transport import Connection, local_credentials
from eventbus.transport import _windows as windows

WINDOWS = pytest.mark.skipif(sys.platform != "win32", reason="Windows named pipes")

# SIDs no alias stands for, so they read back from a descriptor as they were written.
OTHER_USER = "S-1-5-21-1111111111-2222222222-3333333333-1001"
OTHER_GROUP = "S-1-5-21-1111111111-2222222222-3333333333-2001"

_SE_GROUP_ENABLED = 0x4
_SE_GROUP_USE_FOR_DENY_ONLY = 0x10
_SE_GROUP_MANDATORY = 0x1


# -- everywhere ---------------------------------------------------------------------------


def test_the_pipe_grants_the_broker_user_alone() -> None:
    assert windows.pipe_sddl(OTHER_USER) == f"D:P(A;;GA;;;{OTHER_USER})"


def test_a_group_may_read_and_write_but_not_own_the_pipe() -> None:
    assert windows.pipe_sddl(OTHER_USER, OTHER_GROUP) == (
        f"D:P(A;;GA;;;{OTHER_USER})(A;;GRGW;;;{OTHER_GROUP})"
    )
    assert windows.pipe_sddl(OTHER_USER, OTHER_USER) == f"D:P(A;;GA;;;{OTHER_USER})"


@pytest.mark.parametrize("sid", ["S-1-5-32-545)(A;;GA;;;WD", "WD", "S-1-5-32-545 ", ""])
def test_nothing_but_a_sid_reaches_the_sddl(sid: str) -> None:
    with pytest.raises(EventBusError, match="is not a SID like"):
        windows.pipe_sddl(sid)
    with pytest.raises(EventBusError, match="is not a SID like"):
        windows.pipe_sddl(OTHER_USER, sid)


def test_only_enabled_groups_that_grant_access_count() -> None:
    groups = [
        ("S-1-1-0", _SE_GROUP_ENABLED | _SE_GROUP_MANDATORY),
        ("S-1-5-32-544", _SE_GROUP_USE_FOR_DENY_ONLY),  # UAC's filtered Administrators
        ("S-1-5-32-545", _SE_GROUP_ENABLED | _SE_GROUP_USE_FOR_DENY_ONLY),
        ("S-1-5-32-546", 0),  # disabled
        (None, _SE_GROUP_ENABLED),  # a SID that did not convert
    ]
    assert windows.effective_group_sids(groups) == frozenset({"S-1-1-0"})


@pytest.mark.parametrize("group", ["Users", 545, "S-1-5-32-545)(A;;GA;;;WD"])
async def test_the_group_of_a_pipe_must_be_a_sid(group: Any) -> None:
    async def handler(connection: Connection) -> None:
        connection.close()

    with pytest.raises(EventBusError, match="the group allowed to connect is a group SID"):
        await windows.serve(r"\\.\pipe\eventbus-test-group", handler, group=group)


# -- on Windows ---------------------------------------------------------------------------


@pytest.fixture
def pipe() -> str:
    return rf"\\.\pipe\eventbus-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def own_sid() -> str:
    sid = local_credentials().sid
    assert sid is not None and sid.startswith("S-1-"), sid
    return sid


def _on_wine() -> bool:
    if sys.platform != "win32":
        return False
    import ctypes

    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


async def _hold(connection: Connection) -> None:
    while await connection.read():
        pass


def dacl_of(address: str) -> tuple[str, list[tuple[str, str]]]:
    """The DACL flags and the (ACE type, trustee SID) pairs of the pipe at ``address``."""
    if sys.platform != "win32":
        pytest.skip("Windows named pipes")
    import _winapi
    import ctypes
    from ctypes import wintypes

    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    advapi32.GetSecurityInfo.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.DWORD]
    advapi32.GetSecurityInfo.argtypes += [ctypes.c_void_p] * 4 + [ctypes.c_void_p]
    to_text = advapi32.ConvertSecurityDescriptorToStringSecurityDescriptorW
    to_text.argtypes = [
        ctypes.c_void_p,
        wintypes.DWORD,
        wintypes.DWORD,
        ctypes.POINTER(wintypes.LPWSTR),
        ctypes.c_void_p,
    ]
    to_sid = advapi32.ConvertStringSidToSidW
    to_sid.argtypes = [wintypes.LPCWSTR, ctypes.POINTER(ctypes.c_void_p)]
    from_sid = advapi32.ConvertSidToStringSidW
    from_sid.argtypes = [ctypes.c_void_p, ctypes.POINTER(wintypes.LPWSTR)]
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]

    handle = _winapi.CreateFile(address, _winapi.GENERIC_READ, 0, 0, _winapi.OPEN_EXISTING, 0, 0)
    try:
        descriptor = ctypes.c_void_p()
        dacl_information, se_kernel_object = 4, 6
        status = advapi32.GetSecurityInfo(
            handle, se_kernel_object, dacl_information, None, None, None, None,
            ctypes.byref(descriptor),
        )  # fmt: skip
        assert status == 0, ctypes.WinError(status)
        text = wintypes.LPWSTR()
        assert to_text(descriptor, 1, dacl_information, ctypes.byref(text), None)
        sddl = text.value or ""
        kernel32.LocalFree(descriptor)
        kernel32.LocalFree(ctypes.cast(text, ctypes.c_void_p))
    finally:
        _winapi.CloseHandle(handle)

    def canonical(trustee: str) -> str:
        # The descriptor's text may name a well-known SID by its alias ("BU", "LA"...).
        sid = ctypes.c_void_p()
        assert to_sid(trustee, ctypes.byref(sid)), trustee
        out = wintypes.LPWSTR()
        assert from_sid(sid, ctypes.byref(out))
        value = out.value or ""
        kernel32.LocalFree(sid)
        kernel32.LocalFree(ctypes.cast(out, ctypes.c_void_p))
        return value

    found = re.fullmatch(r"D:([A-Z]*)((?:\([^)]*\))*)", sddl)
    assert found is not None, sddl
    aces = [ace.split(";") for ace in re.findall(r"\(([^)]*)\)", found.group(2))]
    return found.group(1), [(ace[0], canonical(ace[5])) for ace in aces]


@WINDOWS
async def test_the_pipe_dacl_names_the_broker_user_alone(pipe: str) -> None:
    async with await windows.serve(pipe, _hold):
        flags, aces = await asyncio.to_thread(dacl_of, pipe)
    assert "P" in flags  # protected: nothing inherited
    assert aces == [("A", own_sid())]


@WINDOWS
async def test_the_configured_group_is_granted_too(pipe: str) -> None:
    async with await windows.serve(pipe, _hold, group=OTHER_GROUP):
        _, aces = await asyncio.to_thread(dacl_of, pipe)
    assert aces == [("A", own_sid()), ("A", OTHER_GROUP)]


@WINDOWS
async def test_every_pipe_instance_refuses_remote_clients(
    pipe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.platform != "win32":
        pytest.skip("Windows named pipes")
    import _winapi

    calls: list[tuple[Any, ...]] = []
    create = _winapi.CreateNamedPipe

    def recording(*args: Any) -> Any:
        calls.append(args)
        return create(*args)

    monkeypatch.setattr(_winapi, "CreateNamedPipe", recording)
    async with await windows.serve(pipe, _hold):
        # each accepted client makes the listener create the next instance
        clients = [await eventbus.transport.connect(pipe) for _ in range(2)]
        for client in clients:
            client.close()
    assert len(calls) >= 3, calls
    first_instance = _winapi.FILE_FLAG_FIRST_PIPE_INSTANCE
    assert [bool(call[1] & first_instance) for call in calls] == [True] + [False] * (len(calls) - 1)
    for name, _, mode, *_, security in calls:
        assert name == pipe
        assert mode & 0x8, "PIPE_REJECT_REMOTE_CLIENTS missing"
        assert security, "created with the default security descriptor"


@WINDOWS
@pytest.mark.skipif(_on_wine(), reason="Wine records a pipe's DACL but does not enforce it")
async def test_a_user_the_dacl_does_not_name_is_refused(pipe: str) -> None:
    if sys.platform != "win32":
        pytest.skip("Windows named pipes")
    import _winapi

    loop = asyncio.get_running_loop()
    security = windows._PipeSecurity(windows.pipe_sddl(OTHER_USER))
    listener = windows._listen(loop, asyncio.Protocol, pipe, security)
    try:
        with pytest.raises(PermissionError):
            _winapi.CreateFile(
                pipe, _winapi.GENERIC_READ | _winapi.GENERIC_WRITE, 0, 0,
                _winapi.OPEN_EXISTING, 0, 0,
            )  # fmt: skip
    finally:
        listener.close()


# -- SID bindings through the pipe --------------------------------------------------------


def _policy(**bindings: Binding) -> Policy:
    return Policy(
        [
            PrincipalRule(name, binding, publish=("events.#",), subscribe=("events.#",))
            for name, binding in bindings.items()
        ],
        name="sid rules",
    )


@pytest.fixture
async def sid_broker(pipe: str) -> AsyncIterator[str]:
    if sys.platform != "win32":
        pytest.skip("Windows named pipes")
    me = own_sid()
    groups = sorted(local_credentials().group_sids - {me})
    assert groups, "this process's token lists no enabled group"
    policy = _policy(
        mine=Binding(sids=frozenset({me})),
        member=Binding(sids=frozenset({groups[0]})),
        stranger=Binding(sids=frozenset({OTHER_USER, OTHER_GROUP})),
    )
    async with Broker(BrokerConfig(address=pipe, policy=policy, stats_interval=0)):
        yield pipe


@contextlib.asynccontextmanager
async def connected(address: str, principal: str) -> AsyncIterator[eventbus.Client]:
    client = await eventbus.connect(address, principal=principal, reconnect=False)
    try:
        yield client
    finally:
        await client.close()


async def test_a_binding_to_this_user_sid_grants(sid_broker: str) -> None:
    async with connected(sid_broker, "mine") as client:
        assert client.grant.principal == "mine"
        sub = await client.subscribe("events.#")
        assert await client.publish("events.x", b"by sid", confirm=True) == 1
        envelope = await sub.get(timeout=30)
        assert envelope.payload == b"by sid"
        assert envelope.publisher.pid == os.getpid()


async def test_a_binding_to_a_group_sid_of_the_token_grants(sid_broker: str) -> None:
    async with connected(sid_broker, "member") as client:
        assert client.grant.principal == "member"


async def test_a_binding_to_other_sids_refuses_and_says_why(sid_broker: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        await eventbus.connect(sid_broker, principal="stranger", reconnect=False)
    message = str(refused.value)
    assert f"user SID {own_sid()} and its groups' SIDs not in" in message, message
    assert "rule set 'sid rules'" in message, message


@WINDOWS
def test_the_default_policy_binds_this_user_sid() -> None:
    binding = eventbus.acl.default_policy().rule("procmond").binding
    assert binding == Binding(sids=frozenset({own_sid()}))
