"""The transport over Windows named pipes (ProactorEventLoop): run on Windows, or under Wine."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from _streams import Accepted, echo, read_exactly, read_line, spin

from eventbus.errors import AddressInUse, ConnectionLost, EventBusError
from eventbus.transport import connect, default_address, memory_pair, serve

pytest_plugins = ["_streams"]

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="Windows named pipes")

MIB = 1024 * 1024


@pytest.fixture
def pipe_name() -> str:
    return rf"\\.\pipe\eventbus-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def same_path(left: str | None, right: str) -> bool:
    return left is not None and os.path.normcase(left) == os.path.normcase(right)


async def test_runs_on_the_proactor_loop() -> None:
    # The module only runs on Windows; the check tells mypy, elsewhere, where the class is.
    if sys.platform == "win32":
        assert isinstance(asyncio.get_running_loop(), asyncio.ProactorEventLoop)


async def test_echo_over_a_named_pipe(pipe_name: str) -> None:
    async with await serve(pipe_name, echo) as server:
        assert server.address == pipe_name
        client = await connect(pipe_name)
        client.write(b"hello ")
        client.writelines([b"over ", b"the ", b"pipe"])
        assert await read_exactly(client, 19) == b"hello over the pipe"
        client.close()
        await client.wait_closed()


async def test_eof_reads_empty_bytes(pipe_name: str, accepted: Accepted) -> None:
    async with await serve(pipe_name, accepted):
        client = await connect(pipe_name)
        server_side = await accepted.next()
        client.write(b"last words")
        client.close()
        assert await read_exactly(server_side, 10) == b"last words"
        assert await server_side.read() == b""


async def test_peer_credentials_are_this_process(pipe_name: str, accepted: Accepted) -> None:
    async with await serve(pipe_name, accepted):
        client = await connect(pipe_name)
        server_side = await accepted.next()
        for seen in (server_side.peer, client.peer):
            assert seen.pid == os.getpid()
            assert seen.uid is None and seen.gid is None
            assert same_path(seen.exe, os.path.realpath(sys.executable)), seen.exe
            assert seen.sid is not None and seen.sid.startswith("S-1-"), seen.sid
        client.close()


CHILD = """
import os, sys
with open(sys.argv[1], "r+b", buffering=0) as pipe:
    pipe.write(b"%d\\n" % os.getpid())
    pipe.read(1)  # hold the connection until the server closes it
"""


async def test_peer_credentials_of_a_child_process(pipe_name: str, accepted: Accepted) -> None:
    async with await serve(pipe_name, accepted):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, pipe_name)
        try:
            server_side = await accepted.next()
            assert int(await read_line(server_side)) == child.pid
            assert server_side.peer.pid == child.pid
            assert same_path(server_side.peer.exe, os.path.realpath(sys.executable))
            server_side.close()
            await child.wait()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


async def test_second_server_on_a_live_pipe_is_refused(pipe_name: str) -> None:
    async with await serve(pipe_name, echo):
        with pytest.raises(AddressInUse):
            await serve(pipe_name, echo)
        client = await connect(pipe_name)
        client.write(b"still here")
        assert await read_exactly(client, 10) == b"still here"
        client.close()


async def test_connect_to_a_missing_pipe_raises_connection_lost(pipe_name: str) -> None:
    with pytest.raises(ConnectionLost, match="eventbus-test"):
        await connect(pipe_name)


async def test_close_stops_serving(pipe_name: str) -> None:
    server = await serve(pipe_name, echo)
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionLost):
        await connect(pipe_name)
    # and the name is free again
    async with await serve(pipe_name, echo):
        client = await connect(pipe_name)
        client.close()


async def test_back_pressure_over_a_pipe(pipe_name: str, accepted: Accepted) -> None:
    size = 4 * MIB
    async with await serve(pipe_name, accepted, read_limit=64 * 1024):
        client = await connect(pipe_name)
        server_side = await accepted.next()
        client.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
        client.write(bytes(size))
        assert client.write_buffer_size() > 256 * 1024
        draining = asyncio.ensure_future(client.drain())
        await spin()
        assert not draining.done()
        assert len(await read_exactly(server_side, size)) == size
        await draining
        client.close()


async def test_bad_pipe_names_are_refused() -> None:
    with pytest.raises(EventBusError, match="pipe"):
        await serve("not-a-pipe", echo)
    with pytest.raises(EventBusError, match="at most"):
        await connect("\\\\.\\pipe\\" + "x" * 300)


async def test_memory_pair_credentials_are_this_process() -> None:
    left, right = memory_pair()
    assert left.peer.pid == os.getpid()
    assert left.peer.uid is None
    assert left.peer.sid is not None and left.peer.sid.startswith("S-1-")
    left.write(b"x")
    assert await right.read() == b"x"


def test_default_address_is_the_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTBUS_ADDRESS", raising=False)
    assert default_address() == r"\\.\pipe\daemoneye-eventbus"
