"""The connection interface every transport implements, and who is on the other end."""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_HIGH_WATER",
    "DEFAULT_LOW_WATER",
    "DEFAULT_READ_LIMIT",
    "UNKNOWN_PEER",
    "Connection",
    "PeerCredentials",
    "PeerLookup",
    "PeerProcess",
    "Receiver",
    "sid_problem",
]

#: Unread received bytes above which a connection stops reading from the OS.
DEFAULT_READ_LIMIT = 4 * 1024 * 1024
#: asyncio's own default write watermarks, used by every implementation.
DEFAULT_HIGH_WATER = 64 * 1024
DEFAULT_LOW_WATER = DEFAULT_HIGH_WATER // 4


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is on the other end of a connection, as the operating system reports it.

    Every field is read from the OS at connection time, never taken from the peer's word.
    A field the platform cannot tell is ``None`` (or empty).

    Attributes:
        pid: the peer's process id.
        uid: the peer's effective user id (POSIX only).
        gid: the peer's effective group id (POSIX only).
        exe: the resolved path of the peer's executable, where the OS tells it
            (``/proc/<pid>/exe`` on Linux, the process image name on Windows).
        groups: the peer's supplementary group ids, where cheaply known.
        sid: the account SID of the peer process's token, as a string (Windows only).
        group_sids: the group SIDs the peer's token holds enabled for access (deny-only
            groups left out), as strings (Windows only).
        cgroup: the peer's cgroup v2 path, as ``/proc/<pid>/cgroup`` shows it to this
            process (Linux only).
        unit: the systemd unit (``*.service`` or ``*.scope``) the peer's cgroup belongs
            to, when its cgroup path names one (Linux only).
    """

    pid: int | None
    uid: int | None
    gid: int | None
    exe: str | None = None
    groups: frozenset[int] = frozenset()
    sid: str | None = None
    cgroup: str | None = None
    unit: str | None = None
    group_sids: frozenset[str] = frozenset()


#: The credentials of a peer the OS would not describe.
UNKNOWN_PEER = PeerCredentials(pid=None, uid=None, gid=None)

# The string form ConvertSidToStringSidW gives: revision 1, a 48-bit authority (hex past
# 32 bits), then 1 to 15 32-bit sub-authorities.
_SID = re.compile(r"S-1-(?:[0-9]{1,10}|0x[0-9A-F]{12})(?:-[0-9]{1,10}){1,15}")


def sid_problem(sid: str) -> str | None:
    """Why ``sid`` is not a Windows SID in its string form (``S-1-5-21-...``), or None.

    Strict, because a SID is spliced into a security descriptor's SDDL text.
    """
    if _SID.fullmatch(sid) is None or any(int(part) > 0xFFFFFFFF for part in sid.split("-")[3:]):
        return f"{sid!r} is not a SID like 'S-1-5-21-1004336348-1177238915-682003330-512'"
    return None


class PeerProcess(abc.ABC):
    """A hold on the peer's process that a recycled pid cannot pass for (a Linux pidfd).

    A connection keeps it for its whole life, and releases it when it is lost.
    """

    __slots__ = ()

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the process that connected is still running (False once released)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the hold back to the OS. Idempotent."""


#: Reads the peer's credentials from a connected transport, and the hold on its process
#: where the platform gives one.
PeerLookup = Callable[[asyncio.BaseTransport], tuple[PeerCredentials, PeerProcess | None]]


class Receiver(abc.ABC):
    """Takes a connection's bytes as they arrive (see `Connection.start_receiving`)."""

    __slots__ = ()

    @abc.abstractmethod
    def data(self, chunk: bytes) -> None:
        """Bytes received, in order; called from the event loop, never re-entrantly."""

    @abc.abstractmethod
    def end(self, error: BaseException | None) -> None:
        """The stream ended (None: end of stream; else why it broke). Called once."""


class Connection(abc.ABC):
    """A connected, bidirectional byte stream with the OS-verified identity of its peer.

    The same interface is implemented over Unix domain sockets, Windows named pipes and an
    in-process memory pair; code above the transport never knows which one it holds.

    Attributes:
        peer: the other side's credentials. On the accepting side these are the client's;
            on the connecting side the server's (or this process's when the OS cannot tell).
    """

    __slots__ = ()

    peer: PeerCredentials

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Return the received bytes not read yet, waiting for some if there are none.

        All buffered chunks are returned at once, joined. Returns ``b""`` at end of stream
        (the peer closed, or this side was closed); the peer's end of stream leaves this side
        open for writing, so what came before it can still be answered, until `close`.
        Raises `ConnectionLost` when the connection was reset or broke, once the bytes
        received before that are consumed.
        Only one coroutine may wait in ``read()`` at a time.
        """

    @abc.abstractmethod
    def start_receiving(self, receiver: Receiver) -> None:
        """Hand every received chunk to ``receiver`` as it arrives, from now on.

        The bytes already received and not read come first (before this returns), and the
        end of the stream last. `read` is not to be used afterwards; `pause_reading` holds
        the chunks back until `resume_reading`.
        """

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending; never blocks. Does nothing once the connection closes."""

    @abc.abstractmethod
    def writelines(self, chunks: Iterable[bytes]) -> None:
        """Queue each of ``chunks`` for sending, in order, as `write` would."""

    @abc.abstractmethod
    def write_buffer_size(self) -> int:
        """Return how many written bytes have not been handed to the OS (or read by the peer)."""

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait while the write buffer is above the high watermark, until it is at the low one.

        Returns at once when the buffer is under the high watermark. Raises `ConnectionLost`
        if the connection is (or becomes) closed.
        """

    def drain_needed(self) -> bool:
        """Whether :meth:`drain` could wait or raise (over the high watermark, or closed):
        when False, a writer may skip awaiting it. Transports that cannot tell say True."""
        return True

    @abc.abstractmethod
    def set_write_buffer_limits(self, high: int, low: int | None = None) -> None:
        """Set the write buffer's high and low watermarks (``low`` defaults to ``high // 4``)."""

    @abc.abstractmethod
    def pause_reading(self) -> None:
        """Stop taking bytes from the peer, so that it is pushed back on once buffers fill."""

    @abc.abstractmethod
    def resume_reading(self) -> None:
        """Undo `pause_reading`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close once the buffered bytes are sent. Idempotent."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Close at once, dropping the bytes not sent yet. Idempotent."""

    @abc.abstractmethod
    def is_closing(self) -> bool:
        """Return True once the connection is closed or closing (by either side)."""

    @abc.abstractmethod
    def peer_alive(self) -> bool:
        """Return whether the peer is still the process that connected.

        False when that process has exited, or could not be pinned down at accept time
        (it was gone, or its pid already belonged to a newer process): then ``peer``'s
        pid no longer names it. False as well once a pinned connection is lost. True where
        the platform cannot tell.
        """

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Wait until the connection is completely closed."""
