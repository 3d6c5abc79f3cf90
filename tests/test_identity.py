"""Linux peer identity: a pidfd that a reused pid cannot fool, the cgroup and systemd unit.

Peers are real child processes (or this process itself, through a socket pair). Each
pidfd path is exercised: ``SO_PEERPIDFD``, and ``pidfd_open`` with the start-time check as
on kernels before 6.5 (the socket option is replaced by one the kernel does not know, so
it answers ``ENOPROTOOPT`` as an old kernel does).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _streams import Accepted, read_line
from _wait import until

import eventbus
from eventbus import Broker, BrokerConfig
from eventbus.protocol import PROTOCOL_VERSION, encode_frame
from eventbus.transport import PeerCredentials, local_credentials, memory_pair, serve
from eventbus.v1 import frames_pb2

pytest_plugins = ["_streams"]

LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(not LINUX, reason="pidfds, cgroups and systemd units: Linux")

if LINUX:
    from eventbus.transport import _pidfd

DEADLINE = 30.0  # a guard against hangs, never a wait that success depends on
# a socket option number no kernel knows: getsockopt answers ENOPROTOOPT, as before 6.5
NO_SUCH_OPTION = 99999

CHILD = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"%d\\n" % os.getpid())
s.recv(1)  # hold the connection until the server closes it or the test kills us
"""

CONNECT_AND_EXIT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
"""


# -- cgroup and unit parsing ----------------------------------------------------------------

HYBRID = """\
12:pids:/system.slice/daemoneye-procmond.service
1:name=systemd:/system.slice/daemoneye-procmond.service
0::/system.slice/daemoneye-procmond.service
"""


@pytest.mark.parametrize(
    ("text", "cgroup", "unit"),
    [
        (
            "0::/system.slice/daemoneye-procmond.service\n",
            "/system.slice/daemoneye-procmond.service",
            "daemoneye-procmond.service",
        ),
        (HYBRID, "/system.slice/daemoneye-procmond.service", "daemoneye-procmond.service"),
        (
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "/user.slice/user-1000.slice/session-3.scope",
            "session-3.scope",
        ),
        (  # a user service names itself, not the user manager above it
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.scope\n",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.scope",
            "app-foo.scope",
        ),
        (
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service\n",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service",
            "dbus.service",
        ),
        (  # a delegated sub-cgroup still belongs to its unit
            "0::/system.slice/daemoneye.service/collectors/procmond\n",
            "/system.slice/daemoneye.service/collectors/procmond",
            "daemoneye.service",
        ),
        ("0::/init.scope\n", "/init.scope", "init.scope"),
        ("0::/\n", "/", None),
        ("0::/user.slice/user-1000.slice\n", "/user.slice/user-1000.slice", None),
        ("0::/system.slice/.service\n", "/system.slice/.service", None),
        ("0::/machine.slice/x.service.d\n", "/machine.slice/x.service.d", None),
        # cgroup v1 only: no unified line
        ("12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/x.service\n", None, None),
        # outside this reader's cgroup namespace: no path it can name
        ("0::/../../system.slice/x.service\n", None, None),
        ("0::\n", None, None),
        ("", None, None),
    ],
)
def test_cgroup_path_and_unit_from_proc_cgroup(
    text: str, cgroup: str | None, unit: str | None
) -> None:
    assert _pidfd.cgroup_v2_path(text) == cgroup
    assert _pidfd.systemd_unit(cgroup) == unit


def test_own_cgroup_is_reported_as_the_proc_file_says() -> None:
    expected = _pidfd.cgroup_v2_path(Path("/proc/self/cgroup").read_text(encoding="utf-8"))
    creds = local_credentials()
    assert creds.cgroup == expected
    assert creds.unit == _pidfd.systemd_unit(expected)


# -- the two ways to a pidfd ----------------------------------------------------------------


@dataclass
class PidfdSource:
    """Which path the lookup is made to take, and the pids it called pidfd_open on."""

    name: str
    opened: list[int] = field(default_factory=list)

    def check_used(self, pid: int) -> None:
        assert self.opened == ([] if self.name == "SO_PEERPIDFD" else [pid])


@pytest.fixture(params=["SO_PEERPIDFD", "pidfd_open"])
def pidfd_source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> PidfdSource:
    source = PidfdSource(request.param)
    real_open = os.pidfd_open

    def spying_open(pid: int, flags: int = 0) -> int:
        source.opened.append(pid)
        return real_open(pid, flags)

    monkeypatch.setattr(os, "pidfd_open", spying_open)
    if source.name == "pidfd_open":
        monkeypatch.setattr(_pidfd, "SO_PEERPIDFD", NO_SUCH_OPTION)
    return source


@pytest.fixture
def sock_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="eb-id-", dir="/tmp")
    try:
        yield os.path.join(directory, "run", "eventbus.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def open_fds() -> list[str]:
    """What every open fd of this process refers to."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the fd listdir itself used
            found.append(os.readlink(f"/proc/self/fd/{name}"))
    return found


def pidfds() -> int:
    return sum("pidfd" in target for target in open_fds())


async def test_a_peer_is_pinned_and_known_dead_once_it_exits(
    pidfd_source: PidfdSource, sock_path: str, accepted: Accepted
) -> None:
    async with await serve(sock_path, accepted):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, sock_path)
        try:
            server_side = await accepted.next()
            assert int(await read_line(server_side)) == child.pid
            peer = server_side.peer
            mine = local_credentials()  # the child inherited our cgroup
            assert (peer.pid, peer.uid, peer.gid) == (child.pid, os.getuid(), os.getgid())
            assert peer.exe == os.path.realpath(sys.executable)
            assert (peer.cgroup, peer.unit) == (mine.cgroup, mine.unit)
            pidfd_source.check_used(child.pid)
            assert server_side.peer_alive()
            child.kill()
            await child.wait()
            assert not server_side.peer_alive()
            server_side.close()
            await server_side.wait_closed()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


def accept_from_reaped_child(sock_path: str) -> tuple[socket.socket, int]:
    """A connection accepted only after the process that made it exited and was reaped,
    and that process's pid."""
    os.makedirs(os.path.dirname(sock_path), mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(sock_path)
        listener.listen()
        child = subprocess.Popen([sys.executable, "-c", CONNECT_AND_EXIT, sock_path])
        assert child.wait(timeout=DEADLINE) == 0
        conn, _ = listener.accept()
    return conn, child.pid


def test_a_peer_gone_before_the_accept_keeps_only_its_connect_time_credentials(
    pidfd_source: PidfdSource, sock_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventbus.transport")
    conn, pid = accept_from_reaped_child(sock_path)
    with conn:
        before = pidfds()
        creds, process = _pidfd.peer_identity(conn)
        assert creds == PeerCredentials(pid=pid, uid=os.getuid(), gid=os.getgid())
        assert process is not None and not process.alive()
        process.release()
        assert pidfds() == before
    pidfd_source.check_used(pid)
    assert f"peer pid {pid} cannot be identified" in caplog.text


def stat_start(pid: int) -> float:
    """When process ``pid`` started, in CLOCK_BOOTTIME seconds (tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def test_start_time_check() -> None:
    started = stat_start(os.getpid())
    _pidfd.check_start_time(os.getpid(), time.clock_gettime(time.CLOCK_BOOTTIME))
    _pidfd.check_start_time(os.getpid(), started)  # the same tick passes
    with pytest.raises(_pidfd.PeerGone, match=r"after the connection was accepted \(the pid"):
        _pidfd.check_start_time(os.getpid(), started - 1.0)
    with pytest.raises(_pidfd.PeerGone, match="exited"):
        _pidfd.check_start_time(2**22 + 1, started)  # above pid_max: no such process


def test_a_process_started_after_the_accept_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_pidfd, "SO_PEERPIDFD", NO_SUCH_OPTION)
    caplog.set_level(logging.INFO, logger="eventbus.transport")
    mine, theirs = socket.socketpair()  # the peer is this process
    with mine, theirs:
        before = open_fds()
        accepted_at = stat_start(os.getpid()) - 1.0  # as if the pid was reused since
        creds, process = _pidfd.peer_identity(mine, accepted_at=accepted_at)
        assert creds == PeerCredentials(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
        assert process is not None and not process.alive()
        assert open_fds() == before  # the pidfd taken for the check was closed
        assert "the pid was reused" in caplog.text

        creds, process = _pidfd.peer_identity(mine)
        assert creds == local_credentials()
        assert isinstance(process, _pidfd.PidfdProcess) and process.alive()
        process.release()
        assert open_fds() == before


def test_without_pidfds_the_pid_is_trusted_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfds(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(_pidfd, "SO_PEERPIDFD", NO_SUCH_OPTION)
    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    mine, theirs = socket.socketpair()
    with mine, theirs:
        creds, process = _pidfd.peer_identity(mine)
    assert creds == local_credentials()
    assert process is None  # nothing to ask later: the connection says alive


def test_release_closes_the_pidfd_once() -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        before = pidfds()
        _, process = _pidfd.peer_identity(mine)
        assert process is not None and process.alive()
        assert pidfds() == before + 1
        process.release()
        process.release()
        assert pidfds() == before
        assert not process.alive()


async def test_a_memory_pair_peer_is_always_alive() -> None:
    left, right = memory_pair()
    assert left.peer_alive() and right.peer_alive()


# -- no fd outlives its connection --------------------------------------------------------


async def raw_session(address: str, hello: bool) -> None:
    reader, writer = await asyncio.open_unix_connection(address)
    if hello:  # an unknown principal: refused, and closed by the broker
        frame = frames_pb2.Hello(protocol_version=PROTOCOL_VERSION, principal="nobody")
        writer.write(encode_frame(frames_pb2.Frame(hello=frame)))
        await asyncio.wait_for(reader.read(), DEADLINE)
    writer.close()
    await writer.wait_closed()


async def test_no_fd_is_left_behind_after_many_connections(address: str) -> None:
    async with Broker(BrokerConfig(address=address, stats_interval=0)) as broker:
        async with await eventbus.connect(address, principal="agent"):
            pass  # anything opened once per process (not per connection) is open now
        await until(lambda: broker.clients == 0, "the warm-up client is gone")
        baseline = sorted(open_fds())
        for _ in range(5):
            clients = [await eventbus.connect(address, principal="procmond") for _ in range(20)]
            await until(lambda: broker.clients == 20, "20 clients admitted")
            # each side of each connection holds a pidfd on the other: this process
            assert pidfds() >= baseline.count("anon_inode:[pidfd]") + 40
            for client in clients:
                await client.close()
            await asyncio.gather(*(raw_session(address, hello=i % 2 == 0) for i in range(20)))
        await until(lambda: broker.clients == 0, "every client is gone")
        await until(lambda: sorted(open_fds()) == baseline, "the fds are back to the baseline")
