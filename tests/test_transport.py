"""The transport over real Unix sockets (asyncio and uvloop loops) and in-process pairs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _streams import Accepted, echo, read_exactly, read_line, spin

from eventbus.errors import AddressInUse, ConnectionLost, InvalidAddress
from eventbus.transport import (
    Connection,
    PeerCredentials,
    Server,
    connect,
    default_address,
    memory_pair,
    serve,
)

pytest_plugins = ["_streams"]

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets; see test_transport_windows"),
    # pytest-asyncio >= 1.0 warns about overriding event_loop_policy; it still honours it,
    # and test_runs_on_the_selected_loop fails if that ever stops being true
    pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture'),
]

MIB = 1024 * 1024


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Run every async test of this module on the default loop and on uvloop."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
        return policy
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    """A socket path in a directory that does not exist yet (serve creates it)."""
    path = str(tmp_path / "run" / "eventbus.sock")
    assert len(os.fsencode(path)) < 100, "tmp_path too long for an AF_UNIX address"
    return path


def this_process() -> PeerCredentials:
    return PeerCredentials(
        pid=os.getpid(),
        uid=os.getuid(),
        gid=os.getgid(),
        exe=os.path.realpath(sys.executable),
    )


def same_identity(seen: PeerCredentials, expected: PeerCredentials) -> None:
    assert (seen.pid, seen.uid, seen.gid, seen.exe) == (
        expected.pid,
        expected.uid,
        expected.gid,
        expected.exe,
    )


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- the loop under test ------------------------------------------------------------------


async def test_runs_on_the_selected_loop(
    event_loop_policy: asyncio.AbstractEventLoopPolicy,
) -> None:
    loop = asyncio.get_running_loop()
    if type(event_loop_policy).__module__.startswith("uvloop"):
        import uvloop

        assert isinstance(loop, uvloop.Loop)
    else:
        assert type(loop).__module__.startswith("asyncio")


# -- data over a Unix socket ----------------------------------------------------------------


async def test_echo_over_unix_socket(sock_path: str) -> None:
    async with await serve(sock_path, echo) as server:
        assert isinstance(server, Server)
        assert server.address == sock_path
        client = await connect(sock_path)
        client.write(b"hello ")
        # writelines is annotated Iterable[bytes] but, like write, takes any bytes-like chunk
        client.writelines([b"over ", bytearray(b"the "), b"socket"])  # type: ignore[list-item]
        client.write(memoryview(b"!"))
        assert await read_exactly(client, 22) == b"hello over the socket!"
        client.close()
        await client.wait_closed()
        assert client.is_closing()


async def test_eof_reads_empty_bytes_after_buffered_data(
    sock_path: str, accepted: Accepted
) -> None:
    async with await serve(sock_path, accepted):
        client = await connect(sock_path)
        server_side = await accepted.next()
        client.write(b"last words")
        client.close()
        assert await read_exactly(server_side, 10) == b"last words"
        assert await server_side.read() == b""
        assert await server_side.read() == b""  # and stays at EOF
        # The peer's end of stream leaves this side able to answer what came before it;
        # closing is the owner's call.
        server_side.write(b"answer")
        server_side.close()
        await server_side.wait_closed()
        assert server_side.is_closing()


async def test_handler_return_closes_the_connection(sock_path: str) -> None:
    async def greet(connection: Connection) -> None:
        connection.write(b"bye")

    async with await serve(sock_path, greet):
        client = await connect(sock_path)
        assert await read_exactly(client, 3) == b"bye"
        assert await client.read() == b""
        client.close()


async def test_handler_exception_is_logged_and_closes(
    sock_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(connection: Connection) -> None:
        raise RuntimeError("handler bug")

    caplog.set_level(logging.ERROR, logger="eventbus.transport")
    async with await serve(sock_path, broken):
        client = await connect(sock_path)
        assert await client.read() == b""
        client.close()
    failures = [r for r in caplog.records if r.name == "eventbus.transport"]
    assert failures
    assert failures[0].exc_info is not None
    assert "handler bug" in str(failures[0].exc_info[1])


async def test_write_after_close_is_a_no_op(sock_path: str) -> None:
    async with await serve(sock_path, echo):
        client = await connect(sock_path)
        client.close()
        client.write(b"ignored")
        client.writelines([b"ignored"])
        await client.wait_closed()
        client.write(b"ignored")
        assert client.write_buffer_size() == 0
        with pytest.raises(ConnectionLost):
            await client.drain()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux reset semantics")
async def test_reset_raises_connection_lost(sock_path: str) -> None:
    # a raw listener that closes with unread bytes in its queue makes Linux reset the peer
    os.mkdir(os.path.dirname(sock_path), 0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(sock_path)
        listener.listen()
        listener.setblocking(False)
        client = await connect(sock_path)
        raw, _ = await asyncio.get_running_loop().sock_accept(listener)
        client.write(b"never read")
        await spin()
        raw.close()
        with pytest.raises(ConnectionLost):
            await client.read()
        await client.wait_closed()
    finally:
        listener.close()


async def test_only_one_reader_at_a_time(sock_path: str, accepted: Accepted) -> None:
    async with await serve(sock_path, accepted):
        client = await connect(sock_path)
        first = asyncio.ensure_future(client.read())
        await spin(3)
        with pytest.raises(RuntimeError, match="already reading"):
            await client.read()
        (await accepted.next()).write(b"x")
        assert await first == b"x"
        client.close()


# -- peer credentials -------------------------------------------------------------------------


async def test_peer_credentials_are_this_process(sock_path: str, accepted: Accepted) -> None:
    async with await serve(sock_path, accepted):
        client = await connect(sock_path)
        server_side = await accepted.next()
        for seen in (server_side.peer, client.peer):
            same_identity(seen, this_process())
            assert seen.sid is None
        if sys.platform.startswith("linux"):
            assert server_side.peer.groups == frozenset(os.getgroups())
        client.close()


CHILD = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"%d\\n" % os.getpid())
s.recv(1)  # hold the connection until the server closes it
"""


async def test_peer_credentials_of_a_child_process(sock_path: str, accepted: Accepted) -> None:
    async with await serve(sock_path, accepted):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, sock_path)
        try:
            server_side = await accepted.next()
            assert int(await read_line(server_side)) == child.pid
            expected = PeerCredentials(
                pid=child.pid,
                uid=os.getuid(),
                gid=os.getgid(),
                exe=os.path.realpath(sys.executable),
            )
            if sys.platform.startswith("linux"):
                same_identity(server_side.peer, expected)
            else:  # the BSDs tell uid/gid (and macOS the pid), not the executable
                assert server_side.peer.uid == expected.uid
            server_side.close()
            assert await child.wait() == 0
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


# -- socket safety ----------------------------------------------------------------------------


async def test_directory_and_socket_modes(sock_path: str) -> None:
    async with await serve(sock_path, echo):
        assert mode_of(os.path.dirname(sock_path)) == 0o700
        assert mode_of(sock_path) == 0o600
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)


async def test_directory_and_socket_modes_with_group(sock_path: str) -> None:
    gid = os.getgid()
    async with await serve(sock_path, echo, group=gid):
        directory = os.path.dirname(sock_path)
        assert mode_of(directory) == 0o750
        assert mode_of(sock_path) == 0o660
        assert os.lstat(directory).st_gid == gid
        assert os.lstat(sock_path).st_gid == gid


async def test_group_by_name(sock_path: str) -> None:
    grp = pytest.importorskip("grp")
    name = grp.getgrgid(os.getgid()).gr_name
    async with await serve(sock_path, echo, group=name):
        assert os.lstat(sock_path).st_gid == os.getgid()


async def test_unknown_group_is_refused(sock_path: str) -> None:
    with pytest.raises(InvalidAddress, match="unknown group"):
        await serve(sock_path, echo, group="no-such-group-eventbus")
    assert not os.path.exists(sock_path)


async def test_existing_safe_directory_is_used(sock_path: str) -> None:
    os.mkdir(os.path.dirname(sock_path), 0o755)
    async with await serve(sock_path, echo):
        client = await connect(sock_path)
        client.close()
    assert mode_of(os.path.dirname(sock_path)) == 0o755  # left as it was


async def test_existing_directory_without_the_group_is_refused(sock_path: str) -> None:
    os.mkdir(os.path.dirname(sock_path), 0o700)
    with pytest.raises(AddressInUse, match="group"):
        await serve(sock_path, echo, group=os.getgid())


async def test_symlink_at_socket_path_is_refused(sock_path: str, tmp_path: Path) -> None:
    os.mkdir(os.path.dirname(sock_path), 0o700)
    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    os.symlink(target, sock_path)
    with pytest.raises(AddressInUse, match="symbolic link"):
        await serve(sock_path, echo)
    assert os.path.islink(sock_path)
    assert target.read_bytes() == b"keep me"


async def test_regular_file_at_socket_path_is_refused(sock_path: str) -> None:
    os.mkdir(os.path.dirname(sock_path), 0o700)
    Path(sock_path).write_bytes(b"not a socket")
    with pytest.raises(AddressInUse, match="not a socket"):
        await serve(sock_path, echo)
    assert Path(sock_path).read_bytes() == b"not a socket"


async def test_stale_socket_is_replaced(sock_path: str) -> None:
    os.mkdir(os.path.dirname(sock_path), 0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()  # bound, never listened, not unlinked: what a crashed server leaves
    os.chmod(sock_path, 0o777)  # tells it apart from ours (inode numbers get reused)
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    async with await serve(sock_path, echo):
        assert mode_of(sock_path) == 0o600
        client = await connect(sock_path)
        client.write(b"ping")
        assert await read_exactly(client, 4) == b"ping"
        client.close()


async def test_second_server_on_a_live_address_is_refused(sock_path: str) -> None:
    async with await serve(sock_path, echo):
        with pytest.raises(AddressInUse, match="another broker answers"):
            await serve(sock_path, echo)
        # the first server is untouched
        client = await connect(sock_path)
        client.write(b"still here")
        assert await read_exactly(client, 10) == b"still here"
        client.close()


async def test_directory_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(AddressInUse, match="symbolic link"):
        await serve(str(link / "eventbus.sock"), echo)
    assert list(real.iterdir()) == []


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o720])
async def test_writable_directory_is_refused(sock_path: str, mode: int) -> None:
    directory = os.path.dirname(sock_path)
    os.mkdir(directory)
    os.chmod(directory, mode)
    with pytest.raises(AddressInUse, match="writable"):
        await serve(sock_path, echo)
    assert not os.path.exists(sock_path)


async def test_directory_that_is_a_file_is_refused(sock_path: str) -> None:
    Path(os.path.dirname(sock_path)).write_bytes(b"")
    with pytest.raises(AddressInUse, match="not a directory"):
        await serve(sock_path, echo)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
async def test_directory_of_another_user_is_refused(sock_path: str) -> None:
    directory = os.path.dirname(sock_path)
    os.mkdir(directory, 0o700)
    os.chown(directory, 65534, -1)
    with pytest.raises(AddressInUse, match="belongs to uid 65534"):
        await serve(sock_path, echo)


async def test_close_removes_the_socket_file(sock_path: str) -> None:
    server = await serve(sock_path, echo)
    assert os.path.exists(sock_path)
    server.close()
    await server.wait_closed()
    assert not os.path.exists(sock_path)
    assert os.path.isdir(os.path.dirname(sock_path))
    server.close()  # idempotent
    with pytest.raises(ConnectionLost):
        await connect(sock_path)


async def test_close_keeps_a_file_that_replaced_the_socket(sock_path: str) -> None:
    server = await serve(sock_path, echo)
    os.unlink(sock_path)
    Path(sock_path).write_bytes(b"someone else's")
    server.close()
    await server.wait_closed()
    assert Path(sock_path).read_bytes() == b"someone else's"


async def test_leaving_the_server_context_ends_its_handlers(
    sock_path: str, accepted: Accepted
) -> None:
    async with await serve(sock_path, accepted):
        client = await connect(sock_path)
        await accepted.next()
    # the held handler was cancelled and its connection closed
    assert await client.read() == b""
    client.close()


async def test_wait_closed_waits_for_handlers(sock_path: str, accepted: Accepted) -> None:
    server = await serve(sock_path, accepted)
    client = await connect(sock_path)
    await accepted.next()
    server.close()
    waiting = asyncio.ensure_future(server.wait_closed())
    await spin()
    assert not waiting.done()
    accepted.release.set()
    await waiting
    assert await client.read() == b""
    client.close()


async def test_socket_path_too_long(tmp_path: Path) -> None:
    path = str(tmp_path / ("x" * 120) / "eventbus.sock")
    with pytest.raises(InvalidAddress, match="bytes long") as refused:
        await serve(path, echo)
    assert path in str(refused.value)
    with pytest.raises(InvalidAddress, match="bytes long"):
        await connect(path)
    assert not os.path.exists(os.path.dirname(path))


async def test_connect_to_a_missing_path_raises_connection_lost(sock_path: str) -> None:
    with pytest.raises(ConnectionLost, match=r"eventbus\.sock") as lost:
        await connect(sock_path)
    assert isinstance(lost.value.__cause__, OSError)


async def test_connect_to_a_stale_socket_raises_connection_lost(sock_path: str) -> None:
    os.mkdir(os.path.dirname(sock_path), 0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()
    with pytest.raises(ConnectionLost, match=r"eventbus\.sock"):
        await connect(sock_path)


# -- flow control over a Unix socket ------------------------------------------------------


async def test_back_pressure_over_unix_socket(sock_path: str, accepted: Accepted) -> None:
    size = 16 * MIB  # far more than the kernel's socket buffers hold
    read_limit = 64 * 1024
    async with await serve(sock_path, accepted, read_limit=read_limit):
        client = await connect(sock_path)
        server_side = await accepted.next()
        client.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
        await client.drain()  # nothing buffered: returns at once
        assert not client.drain_needed()
        client.write(bytes(size))
        assert client.write_buffer_size() > 256 * 1024
        assert client.drain_needed()
        draining = asyncio.ensure_future(client.drain())
        await spin()
        # the server side stopped taking bytes at its read limit, so the writer stays full
        assert not draining.done()
        assert client.write_buffer_size() > 256 * 1024
        first = await server_side.read()
        assert 0 < len(first) <= read_limit + MIB
        received = len(first)
        while received < size:
            chunk = await server_side.read()
            assert chunk
            received += len(chunk)
        await draining
        assert client.write_buffer_size() <= 64 * 1024
        client.close()


async def test_drain_raises_when_the_peer_goes_away(sock_path: str, accepted: Accepted) -> None:
    async with await serve(sock_path, accepted, read_limit=64 * 1024):
        client = await connect(sock_path)
        server_side = await accepted.next()
        client.write(bytes(16 * MIB))
        draining = asyncio.ensure_future(client.drain())
        await spin()
        assert not draining.done()
        server_side.abort()
        with pytest.raises(ConnectionLost):
            await draining
        await client.wait_closed()
        assert client.drain_needed()  # closed: drain() would raise


async def test_pause_and_resume_reading(sock_path: str, accepted: Accepted) -> None:
    async with await serve(sock_path, accepted):
        client = await connect(sock_path)
        server_side = await accepted.next()
        server_side.pause_reading()
        server_side.pause_reading()  # idempotent
        client.write(b"held back")
        reading = asyncio.ensure_future(server_side.read())
        await spin()
        assert not reading.done()
        server_side.resume_reading()
        data = await reading
        while len(data) < 9:
            data += await server_side.read()
        assert data == b"held back"
        client.close()


# -- memory pairs -----------------------------------------------------------------------------


async def test_memory_pair_carries_bytes_both_ways() -> None:
    left, right = memory_pair()
    left.write(b"ping")
    # writelines is annotated Iterable[bytes] but, like write, takes any bytes-like chunk
    left.writelines([b" ", bytearray(b"and"), b" more"])  # type: ignore[list-item]
    assert await right.read() == b"ping and more"
    right.write(memoryview(b"pong"))
    assert await left.read() == b"pong"


async def test_memory_pair_copies_mutable_buffers() -> None:
    left, right = memory_pair()
    buffer = bytearray(b"before")
    left.write(buffer)
    buffer[:] = b"after!"
    assert await right.read() == b"before"


async def test_memory_pair_read_waits_for_a_write() -> None:
    left, right = memory_pair()
    reading = asyncio.ensure_future(right.read())
    await spin(3)
    assert not reading.done()
    left.write(b"now")
    assert await reading == b"now"


async def test_memory_pair_credentials_are_this_process() -> None:
    left, right = memory_pair()
    for side in (left, right):
        same_identity(side.peer, this_process())


async def test_memory_pair_close_gives_eof_after_buffered_data() -> None:
    left, right = memory_pair()
    left.write(b"one")
    left.write(b"two")
    left.close()
    assert left.is_closing()
    assert await right.read() == b"onetwo"
    assert await right.read() == b""
    assert right.is_closing()
    await left.wait_closed()
    await right.wait_closed()
    right.write(b"ignored")  # a no-op once closed
    left.write(b"ignored")
    assert left.write_buffer_size() == 0
    with pytest.raises(ConnectionLost):
        await left.drain()


async def test_memory_pair_close_wakes_a_waiting_reader() -> None:
    left, right = memory_pair()
    reading = asyncio.ensure_future(right.read())
    await spin(3)
    left.close()
    assert await reading == b""


async def test_memory_pair_abort_drops_unread_bytes() -> None:
    left, right = memory_pair()
    left.write(b"dropped")
    left.abort()
    assert await right.read() == b""


async def test_memory_pair_back_pressure() -> None:
    left, right = memory_pair()
    left.set_write_buffer_limits(high=1024, low=256)
    left.write(bytes(512))
    await left.drain()  # under the high watermark: returns at once
    left.write(bytes(4096))
    assert left.write_buffer_size() == 4608
    draining = asyncio.ensure_future(left.drain())
    await spin()
    assert not draining.done()
    assert len(await right.read()) == 4608
    await draining
    assert left.write_buffer_size() == 0


async def test_memory_pair_drain_raises_when_the_peer_closes() -> None:
    left, right = memory_pair()
    left.set_write_buffer_limits(high=16)
    left.write(bytes(64))
    draining = asyncio.ensure_future(left.drain())
    await spin(3)
    assert not draining.done()
    right.close()
    with pytest.raises(ConnectionLost):
        await draining


async def test_memory_pair_rejects_bad_watermarks() -> None:
    left, _ = memory_pair()
    with pytest.raises(ValueError):
        left.set_write_buffer_limits(high=10, low=20)


# -- default address ------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("EVENTBUS_ADDRESS", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield monkeypatch


def test_default_address_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVENTBUS_ADDRESS", "/somewhere/bus.sock")
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert default_address() == "/somewhere/bus.sock"


def test_default_address_in_xdg_runtime_dir(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVENTBUS_ADDRESS", "")  # empty counts as unset
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert default_address() == "/run/user/1234/daemoneye/eventbus.sock"


def test_default_address_in_temp_dir(clean_env: pytest.MonkeyPatch) -> None:
    expected = os.path.join(tempfile.gettempdir(), f"daemoneye-{os.getuid()}", "eventbus.sock")
    assert default_address() == expected
