"""Linux peer identity pinned by a pidfd, so that a recycled pid cannot lend its identity.

``SO_PEERCRED`` tells the pid, uid and gid the peer had when it connected; everything else
(executable, groups, cgroup, systemd unit) is read from ``/proc/<pid>``, and a pid is given
to a new process once the old one is reaped. So the lookup first takes a pidfd on the
process that connected: ``SO_PEERPIDFD`` (Linux 6.5+) is the kernel's own reference, taken
at ``connect()``; on older kernels ``pidfd_open(pid)``, then a check that the process found
under that pid did not start after the connection was accepted. It then reads
``/proc/<pid>``, and last checks that the pidfd's process has not exited: if it has not, the
pid named that process during every read. The connection keeps the pidfd, so that the
broker can ask again when the peer says Hello.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import sys
import time

from ._connection import PeerCredentials, PeerProcess

__all__ = [
    "SO_PEERPIDFD",
    "PeerGone",
    "PidfdProcess",
    "cgroup_v2_path",
    "check_start_time",
    "peer_identity",
    "process_cgroup",
    "systemd_unit",
]

# imported by _unix on Linux only; the assert also tells type checkers
assert sys.platform == "linux"

logger = logging.getLogger("eventbus.transport")

#: <asm-generic/socket.h>; the socket module does not name it (Python 3.13 neither).
SO_PEERPIDFD = 77
_UCRED = struct.Struct("3i")
# /proc/<pid>/stat field 22, starttime, counted from field 1; fields 1-2 (pid, comm) end
# at the last ")" since comm may itself hold spaces and parentheses
_STARTTIME_AFTER_COMM = 22 - 3
_UNIT_SUFFIXES = (".service", ".scope")


class PidfdProcess(PeerProcess):
    """A pidfd on the peer's process; it polls readable once that process has exited."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        """Own ``fd``: `release` closes it."""
        self._fd = fd

    def __repr__(self) -> str:
        return f"<PidfdProcess fd={self._fd}>" if self._fd >= 0 else "<PidfdProcess released>"

    def alive(self) -> bool:
        if self._fd < 0:
            return False
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return not poller.poll(0)

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class _Vanished(PeerProcess):
    """The process that connected could not be pinned: it exited, or its pid was reused."""

    __slots__ = ()

    def alive(self) -> bool:
        return False

    def release(self) -> None:
        pass


_VANISHED = _Vanished()


class PeerGone(Exception):
    """The process that connected is no longer the one its pid names; the message says why."""


def peer_identity(
    sock: socket.socket, *, accepted_at: float | None = None
) -> tuple[PeerCredentials, PeerProcess | None]:
    """The credentials of the peer of ``sock`` and a hold on its process.

    ``accepted_at`` is when the connection was accepted, in ``CLOCK_BOOTTIME`` seconds (by
    default: now). When the process cannot be pinned, the credentials are only what
    ``SO_PEERCRED`` fixed at connect time and the hold reports it dead; where the kernel
    has no pidfds at all, they are read from ``/proc`` as they are, with no hold (None).
    """
    if accepted_at is None:
        accepted_at = time.clock_gettime(time.CLOCK_BOOTTIME)
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    if pid <= 0:  # the peer lives in a pid namespace we cannot see into
        return PeerCredentials(pid=None, uid=uid, gid=gid), None
    fixed = PeerCredentials(pid=pid, uid=uid, gid=gid)
    try:
        fd = _pin(sock, pid, accepted_at)
    except PeerGone as gone:
        logger.info("peer pid %d cannot be identified: %s", pid, gone)
        return fixed, _VANISHED
    if fd is None:
        return _resolve(fixed), None
    process = PidfdProcess(fd)
    try:
        creds = _resolve(fixed)
    except BaseException:
        process.release()
        raise
    if not process.alive():
        process.release()
        logger.info("peer pid %d cannot be identified: it exited while being looked up", pid)
        return fixed, _VANISHED
    return creds, process


def _pin(sock: socket.socket, pid: int, accepted_at: float) -> int | None:
    """A pidfd on the process that connected; None where the kernel gives none."""
    try:
        fd: int = sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
        return fd
    except OSError as exc:
        if exc.errno != errno.ENOPROTOOPT:  # the kernel knows the option: nothing to pin
            raise PeerGone(f"the kernel has no pidfd for it ({exc.strerror})") from None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise PeerGone("it has exited") from None
    except OSError:  # no pidfds here (an old kernel, a seccomp filter): trust the pid
        return None
    try:
        check_start_time(pid, accepted_at)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_start_time(pid: int, accepted_at: float) -> None:
    """Raise `PeerGone` unless process ``pid`` started no later than ``accepted_at``.

    A process that started after the connection was accepted cannot have connected: the pid
    was reused. Both sides are compared in clock ticks (``starttime``'s unit), so a process
    started within the accept's own tick passes.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        started = int(fields[_STARTTIME_AFTER_COMM])
    except FileNotFoundError:
        raise PeerGone("it has exited") from None
    except (OSError, ValueError, IndexError) as exc:
        raise PeerGone(f"its start time cannot be read: {exc}") from None
    ticks = os.sysconf("SC_CLK_TCK")
    # The epsilon keeps a time read back from starttime in its own tick despite float rounding.
    if started > int(accepted_at * ticks + 1e-6):
        raise PeerGone(
            f"pid {pid} belongs to a process started {started / ticks - accepted_at:.2f} s "
            "after the connection was accepted (the pid was reused)"
        )


def _resolve(fixed: PeerCredentials) -> PeerCredentials:
    """``fixed`` (pid, uid, gid) completed from ``/proc/<pid>``."""
    assert fixed.pid is not None
    cgroup = process_cgroup(fixed.pid)
    return PeerCredentials(
        pid=fixed.pid,
        uid=fixed.uid,
        gid=fixed.gid,
        exe=_exe(fixed.pid),
        groups=_groups(fixed.pid),
        cgroup=cgroup,
        unit=systemd_unit(cgroup),
    )


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:  # another user's process (without privilege), or already gone
        return None


def _groups(pid: int) -> frozenset[int]:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return frozenset(int(gid) for gid in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def process_cgroup(pid: int | str) -> str | None:
    """The cgroup v2 path of process ``pid`` (or ``"self"``), None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="surrogateescape") as file:
            return cgroup_v2_path(file.read())
    except OSError:
        return None


def cgroup_v2_path(text: str) -> str | None:
    """The path of the ``0::`` (unified hierarchy) line of a ``/proc/<pid>/cgroup`` text.

    The path is relative to the reader's cgroup namespace. None when there is no such line
    (a cgroup v1 only system), or the process is outside that namespace (its path climbs
    out with ``..``) and so has no path this reader can name.
    """
    for line in text.splitlines():
        if line.startswith("0::"):
            path = line[3:]
            if not path.startswith("/") or ".." in path.split("/"):
                return None
            return path
    return None


def systemd_unit(cgroup: str | None) -> str | None:
    """The systemd unit a cgroup path belongs to: its deepest ``*.service``/``*.scope`` part.

    The deepest, so that a unit's own sub-cgroups (``Delegate=``) still name it, and a user
    service (under ``user@UID.service``) names itself rather than the user manager.
    """
    for part in reversed((cgroup or "").split("/")):
        if part.endswith(_UNIT_SUFFIXES) and part not in _UNIT_SUFFIXES:
            return part
    return None
