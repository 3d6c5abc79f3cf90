"""Identity across real processes: a peer that hands its socket on, bindings by unit and cgroup.

The broker runs as its own process; the peers are this test process and children of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _procs import DEADLINE, PROCS_DIR, BrokerProc, Child

import eventbus
from eventbus.transport import local_credentials
from eventbus.v1 import frames_pb2

pytest_plugins = ["_procs"]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="pidfds, cgroups and systemd units: Linux"
)

HANDOVER = PROCS_DIR / "handover.py"
_E = frames_pb2.ErrorCode


class Grandchild:
    """A process this test did not start and cannot wait for, held by a pidfd (never by
    its pid, which may be reused once it is gone)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.pidfd_open(pid)

    def exited(self, timeout: float) -> bool:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def kill(self) -> None:
        if not self.exited(0):
            signal.pidfd_send_signal(self.fd, signal.SIGKILL)
            assert self.exited(DEADLINE), f"grandchild {self.pid} survived SIGKILL"
        os.close(self.fd)


@pytest.fixture
def handover(broker: BrokerProc) -> Iterator[Callable[[str], tuple[Child, Grandchild]]]:
    """Starts tests/procs/handover.py on ``broker``; kills and collects all it started."""
    started: list[tuple[Child, Grandchild]] = []

    def start(parent_does: str) -> tuple[Child, Grandchild]:
        argv = [sys.executable, str(HANDOVER), broker.address, "procmond", parent_does]
        child = Child(argv, f"handover-{parent_does}")
        try:
            ready = json.loads(child.wait_line(lambda line: '"ready"' in line))
        except BaseException:
            child.reap()
            raise
        started.append((child, Grandchild(ready["pid"])))
        return started[-1]

    try:
        yield start
    finally:
        for child, grandchild in started:
            grandchild.kill()  # first: it holds the child's stdout open
            child.reap()


def answer(child: Child) -> dict[str, object]:
    message: dict[str, object] = json.loads(child.wait_line(lambda line: '"answer"' in line))
    return message


def test_a_peer_whose_process_is_gone_is_refused_at_hello(
    broker: BrokerProc, handover: Callable[[str], tuple[Child, Grandchild]]
) -> None:
    child, grandchild = handover("exit")
    # The process that connected exits and is reaped; its socket lives on in its child.
    assert child.popen.wait(timeout=DEADLINE) == 0
    child.send("hello")
    refused = answer(child)
    message = f"peer process {child.pid} is gone or was replaced since it connected"
    assert refused == {
        "event": "answer",
        "body": "error",
        "code": _E.ERROR_CODE_UNAUTHENTICATED,
        "message": message,
    }
    child.wait_line(lambda line: '"closed"' in line)  # and the broker hung up
    assert grandchild.exited(DEADLINE)
    # The broker logged whom it refused, and why.
    logged = f"refused pid={child.pid} uid={os.getuid()} as 'procmond': {message}"
    deadline = time.monotonic() + DEADLINE
    while (line := broker.stderr.next(deadline)) is not None and logged not in line:
        pass
    assert line is not None, broker.diagnostics()


def test_a_peer_that_shares_its_socket_while_alive_is_admitted(
    handover: Callable[[str], tuple[Child, Grandchild]],
) -> None:
    # The same hand-over, but the process that connected is still there at Hello.
    child, grandchild = handover("stay")
    child.send("hello")
    assert answer(child) == {"event": "answer", "body": "welcome"}
    assert grandchild.exited(DEADLINE)
    assert child.popen.wait(timeout=DEADLINE) == 0


# -- bindings by systemd unit and cgroup ------------------------------------------------------


def write_policy(directory: str, cgroup: str, unit: str | None) -> str:
    """``procmond`` bound to this process's cgroup, ``netmond`` to a unit it is not in,
    ``fsmond`` to a cgroup it is not in, ``perfmond`` to its own unit where it has one."""
    own_unit = f'unit = ["{unit}"]' if unit else "any_user = true  # no unit here"
    path = os.path.join(directory, "policy.toml")
    Path(path).write_text(
        textwrap.dedent(
            f"""\
            [policy]
            name = "placement test policy"

            [principals.procmond]
            uid = [{os.getuid()}]
            cgroup = ["{cgroup}"]
            publish = ["events.process.#"]

            [principals.netmond]
            unit = ["daemoneye-netmond-nowhere.service"]
            publish = ["events.network.#"]

            [principals.fsmond]
            cgroup = ["/daemoneye-nowhere.slice"]
            publish = ["events.filesystem.#"]

            [principals.perfmond]
            {own_unit}
            publish = ["events.performance.#"]
            """
        ),
        encoding="utf-8",
    )
    return path


async def test_bindings_by_unit_and_cgroup(
    bus_dir: str, broker_with: Callable[..., BrokerProc]
) -> None:
    mine = local_credentials()
    if mine.cgroup is None:
        pytest.skip("no cgroup v2 path for this process (cgroup v1 only, or another namespace)")
    proc = await asyncio.to_thread(
        broker_with, "--config", write_policy(bus_dir, mine.cgroup, mine.unit)
    )
    async with await eventbus.connect(proc.address, principal="procmond") as procmond:
        assert procmond.grant.principal == "procmond"
    async with await eventbus.connect(proc.address, principal="perfmond") as perfmond:
        assert perfmond.grant.principal == "perfmond"

    with pytest.raises(eventbus.PermissionDenied) as refused:
        await eventbus.connect(proc.address, principal="netmond")
    if mine.unit is None:
        why = "the peer's systemd unit is unknown and the binding requires one"
    else:
        why = f"unit {mine.unit!r} not in ['daemoneye-netmond-nowhere.service']"
    assert f"may not act as principal 'netmond': {why}" in str(refused.value)

    with pytest.raises(eventbus.PermissionDenied) as refused:
        await eventbus.connect(proc.address, principal="fsmond")
    assert (
        f"may not act as principal 'fsmond': cgroup {mine.cgroup!r} is not at or below any of "
        "['/daemoneye-nowhere.slice'] (rule set 'placement test policy')"
    ) in str(refused.value)
