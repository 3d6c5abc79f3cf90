"""Socket activation: a broker process serves the listening socket it inherits on fd 3
(``LISTEN_FDS=1``, ``LISTEN_PID`` its own pid), as systemd passes it."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator

import pytest
from _procs import Child, child_env

import eventbus

pytest_plugins = ["_procs"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix socket activation")

# Puts the socket on fd 3 and sets LISTEN_PID to its own pid, which exec keeps: what
# systemd does between fork and exec.
_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "eventbus.broker", *sys.argv[2:]])
"""


@pytest.fixture
def listening(bus_dir: str) -> Iterator[tuple[socket.socket, str]]:
    path = os.path.join(bus_dir, "activated.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(16)
    try:
        yield sock, path
    finally:
        sock.close()


def activated_broker(sock: socket.socket, *args: str) -> Child:
    fd = sock.fileno()
    argv = [sys.executable, "-c", _ACTIVATE, str(fd), "--stats-interval", "0", *args]
    return Child(argv, "activated-broker", env=child_env(), pass_fds=(fd,))


async def test_the_broker_serves_the_socket_it_inherits(
    listening: tuple[socket.socket, str],
) -> None:
    sock, path = listening
    # An address flag is overridden by the inherited socket: it is never bound.
    elsewhere = os.path.join(os.path.dirname(path), "never", "eventbus.sock")
    child = activated_broker(sock, "--address", elsewhere)
    sock.close()  # only the broker holds it now
    try:
        line = child.wait_line(lambda text: "listening on" in text)
        assert line.endswith(path), line
        async with await eventbus.connect(path, principal="agent", reconnect=False) as agent:
            await agent.ping()
            (me,) = await agent.list_subscriptions()
            assert me.identity.pid == os.getpid()  # verified through the inherited socket
        assert not os.path.exists(elsewhere)
    finally:
        child.signal(signal.SIGTERM)
        code = child.wait_exit()
        child.reap()
    assert code == 0, child.diagnostics()
    # The socket file is the service manager's: the broker leaves it in place.
    assert os.path.exists(path)


def test_listen_fds_meant_for_another_process_are_ignored(bus_dir: str) -> None:
    address = os.path.join(bus_dir, "bus", "eventbus.sock")
    env = child_env(LISTEN_FDS="1", LISTEN_PID="1")
    argv = [sys.executable, "-m", "eventbus.broker", "--address", address]
    child = Child([*argv, "--stats-interval", "0"], "broker", env=env)
    try:
        line = child.wait_line(lambda text: "listening on" in text)
        assert line.endswith(address)
    finally:
        child.signal(signal.SIGTERM)
        assert child.wait_exit() == 0, child.diagnostics()
        child.reap()
