"""Unix domain sockets: serving and connecting, socket-file safety, and peer credentials.

Works on the default asyncio loop and on uvloop alike: both hand the protocol a transport
whose ``get_extra_info("socket")`` answers ``getsockopt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
import struct
import sys

from ..errors import AddressInUse, ConnectionLost, InvalidAddress
from ._address import no_broker_hint
from ._connection import (
    DEFAULT_READ_LIMIT,
    UNKNOWN_PEER,
    Connection,
    PeerCredentials,
    PeerProcess,
)
from ._server import Handler, Server
from ._stream import StreamConnection

__all__ = ["UnixServer", "connect", "local_credentials", "serve"]

# POSIX only (the package picks _windows on Windows); the assert also tells type checkers
assert sys.platform != "win32"

# sizeof(sockaddr_un.sun_path) less the terminating NUL that C clients expect to fit
_MAX_PATH_BYTES = (108 if sys.platform.startswith("linux") else 104) - 1
_DIR_MODE = 0o700
_GROUP_DIR_MODE = 0o750
_SOCKET_MODE = 0o600
_GROUP_SOCKET_MODE = 0o660
# loop turns between close() and closing the listening socket: accept, then attach
_ACCEPT_TURNS = 3
# the socket is born 0600 whatever the process umask: nobody else can connect before chmod
_BIND_UMASK = 0o177

_FileId = tuple[int, int]


# -- credentials --------------------------------------------------------------------------


def local_credentials() -> PeerCredentials:
    """Return this process's own credentials, in the form a peer would see them."""
    cgroup, unit = _own_cgroup()
    return PeerCredentials(
        pid=os.getpid(),
        uid=os.getuid(),
        gid=os.getgid(),
        exe=os.path.realpath(sys.executable) if sys.executable else None,
        groups=frozenset(os.getgroups()),
        cgroup=cgroup,
        unit=unit,
    )


def _peer_identity(
    transport: asyncio.BaseTransport,
) -> tuple[PeerCredentials, PeerProcess | None]:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return UNKNOWN_PEER, None
    try:
        return _socket_identity(sock)
    except OSError:
        return UNKNOWN_PEER, None


def _server_identity(
    transport: asyncio.BaseTransport,
) -> tuple[PeerCredentials, PeerProcess | None]:
    # the connecting side falls back on its own identity, per the Connection contract
    peer, process = _peer_identity(transport)
    return (local_credentials(), None) if peer == UNKNOWN_PEER else (peer, process)


if sys.platform.startswith("linux"):
    from ._pidfd import peer_identity as _socket_identity
    from ._pidfd import process_cgroup, systemd_unit

    def _own_cgroup() -> tuple[str | None, str | None]:
        cgroup = process_cgroup("self")
        return cgroup, systemd_unit(cgroup)

elif sys.platform == "darwin" or sys.platform.startswith(("freebsd", "dragonfly")):
    # <sys/un.h>, <sys/ucred.h>: getsockopt(SOL_LOCAL, LOCAL_PEERCRED) fills a struct xucred
    # {u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; ...}; FreeBSD 13+
    # appends the pid (after padding to pointer alignment); macOS has LOCAL_PEERPID for it.
    _SOL_LOCAL = 0
    _LOCAL_PEERCRED = 1
    _LOCAL_PEERPID = 2
    _XUCRED = struct.Struct("IIh16i")
    _XUCRED_PID_OFFSET = 80
    _XUCRED_WITH_PID = _XUCRED_PID_OFFSET + 8

    def _socket_credentials(sock: socket.socket) -> PeerCredentials:
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_WITH_PID)
        _version, uid, ngroups, *gids = _XUCRED.unpack_from(raw)
        groups = gids[: max(0, min(ngroups, len(gids)))]
        pid: int | None = None
        if sys.platform == "darwin":
            try:
                pid = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERPID)
            except OSError:
                pid = None
        elif len(raw) >= _XUCRED_WITH_PID:
            (pid,) = struct.unpack_from("i", raw, _XUCRED_PID_OFFSET)
        return PeerCredentials(
            pid=pid if pid else None,
            uid=uid,
            gid=groups[0] if groups else None,  # cr_groups[0] is the effective gid
            groups=frozenset(groups),
        )

else:

    def _socket_credentials(sock: socket.socket) -> PeerCredentials:
        return UNKNOWN_PEER


if not sys.platform.startswith("linux"):
    # no pidfds, cgroups or systemd units here: the pid is trusted as it was at accept

    def _socket_identity(sock: socket.socket) -> tuple[PeerCredentials, PeerProcess | None]:
        return _socket_credentials(sock), None

    def _own_cgroup() -> tuple[str | None, str | None]:
        return None, None


# -- socket-file safety -------------------------------------------------------------------


def _check_path_length(path: str) -> None:
    size = len(os.fsencode(path))
    if size == 0:
        raise InvalidAddress("the Unix socket path is empty")
    if size > _MAX_PATH_BYTES:
        raise InvalidAddress(
            f"Unix socket path {path!r} is {size} bytes long; this platform allows at most "
            f"{_MAX_PATH_BYTES} bytes (sockaddr_un.sun_path): choose a shorter path"
        )


def _refuse(path: str, problem: str) -> AddressInUse:
    return AddressInUse(f"refusing to serve on {path!r}: {problem}")


def _resolve_group(group: int | str | None) -> int | None:
    if group is None or isinstance(group, int):
        return group
    import grp  # not on Windows; imported here so the module stays importable there

    try:
        gid: int = grp.getgrnam(group).gr_gid
        return gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise InvalidAddress(f"unknown group {group!r}: no such group on this system") from None


def _prepare_directory(directory: str, gid: int | None) -> None:
    """Create the socket's directory, or check that an existing one is safe to use."""
    parent = os.path.dirname(directory)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(directory, _DIR_MODE)
    except FileExistsError:
        pass
    else:
        try:
            if gid is not None:
                os.chown(directory, -1, gid)  # group first, then the bits that let it in
                os.chmod(directory, _GROUP_DIR_MODE)
            else:
                os.chmod(directory, _DIR_MODE)  # the umask may have cleared bits, never added
        except OSError as exc:
            raise _refuse(directory, f"cannot set the directory's group/mode: {exc}") from exc
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(directory, "the socket directory is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(directory, "the socket directory exists and is not a directory")
    uid = os.getuid()
    if st.st_uid != uid:
        raise _refuse(
            directory, f"the socket directory belongs to uid {st.st_uid}, not to uid {uid}"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise _refuse(
            directory,
            f"the socket directory is group- or world-writable (mode {mode:04o}); "
            "others could replace the socket",
        )
    if gid is not None and (st.st_gid != gid or not mode & 0o010):
        raise _refuse(
            directory,
            f"the socket directory (group {st.st_gid}, mode {mode:04o}) does not let group "
            f"{gid} reach the socket; chgrp it and chmod g+x, or remove it",
        )


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody answers on; refuse anything else found at ``path``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "it is a symbolic link; it will be neither followed nor replaced")
    if not stat.S_ISSOCK(st.st_mode):
        raise _refuse(path, "a file that is not a socket exists at that path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        err = probe.connect_ex(path)
    finally:
        probe.close()
    if err in (0, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS):
        # connected, or the listen backlog is full: someone is accepting there
        raise AddressInUse(f"another broker answers on {path!r}")
    if err == errno.ECONNREFUSED:  # stale: its server died without removing it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    if err != errno.ENOENT:
        raise _refuse(path, f"cannot tell whether the socket is in use: {os.strerror(err)}")


def _bind(path: str, gid: int | None) -> tuple[socket.socket, _FileId]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ident: _FileId | None = None
    try:
        old_umask = os.umask(_BIND_UMASK)
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"another broker took {path!r} meanwhile") from exc
            raise
        finally:
            os.umask(old_umask)
        st = os.lstat(path)
        ident = (st.st_dev, st.st_ino)
        if gid is not None:
            os.chown(path, -1, gid)  # group first, then the bits that let it in
            os.chmod(path, _GROUP_SOCKET_MODE)
        else:
            os.chmod(path, _SOCKET_MODE)
    except BaseException:
        sock.close()
        if ident is not None:
            _unlink_if_same(path, ident)
        raise
    return sock, ident


def _unlink_if_same(path: str, ident: _FileId) -> None:
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == ident:
            os.unlink(path)
    except FileNotFoundError:
        pass


# -- server and client --------------------------------------------------------------------


class UnixServer(Server):
    """A `Server` listening on a Unix domain socket file it owns."""

    def __init__(
        self, address: str, path: str, ident: _FileId | None, handler: Handler, read_limit: int
    ) -> None:
        """Wrap the socket bound at ``path``; `serve` attaches the asyncio server."""
        super().__init__(address, handler, _peer_identity, read_limit)
        self._path = path
        self._ident = ident
        self._server: asyncio.AbstractServer | None = None
        self._listener_closed: asyncio.Future[None] | None = None

    def _stop_listening(self) -> None:
        # Unlinking first means no new client can reach the socket. The listening socket
        # itself is closed a few loop turns later: asyncio's Server asserts it is open when
        # a transport for an already-accepted connection attaches to it, and on failure
        # leaks that connection's socket. The turns let connections still in the backlog
        # be accepted and attached (then aborted, as the server is closing).
        if self._ident is not None:  # an inherited socket's file belongs to who made it
            _unlink_if_same(self._path, self._ident)
        if self._server is None:
            return
        loop = self._server.get_loop()
        self._listener_closed = loop.create_future()
        self._close_listener_after(loop, _ACCEPT_TURNS)

    def _close_listener_after(self, loop: asyncio.AbstractEventLoop, turns: int) -> None:
        if turns:
            loop.call_soon(self._close_listener_after, loop, turns - 1)
            return
        if self._server is not None:
            self._server.close()
        if self._listener_closed is not None and not self._listener_closed.done():
            self._listener_closed.set_result(None)

    async def _wait_listener_closed(self) -> None:
        if self._listener_closed is not None:
            await asyncio.shield(self._listener_closed)
        if self._server is not None:
            await self._server.wait_closed()


async def serve(
    address: str,
    handler: Handler,
    *,
    group: int | str | None = None,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> Server:
    """Listen on the Unix socket ``address`` and run ``handler`` for each connection.

    The socket's directory is created 0700 (0750 and owned by ``group`` when given); an
    existing directory must be a real directory owned by this uid and writable by nobody
    else. A stale socket file is replaced; anything else at the path is refused with
    `AddressInUse`, as is a socket another server answers on. The socket is made 0600
    (0660 with ``group``).
    """
    loop = asyncio.get_running_loop()
    _check_path_length(address)
    if read_limit <= 0:
        raise ValueError(f"read_limit must be positive, got {read_limit!r}")
    gid = _resolve_group(group)
    path = os.path.abspath(address)
    _prepare_directory(os.path.dirname(path), gid)
    _clear_stale_socket(path)
    sock, ident = _bind(path, gid)
    server = UnixServer(address, path, ident, handler, read_limit)
    try:
        server._server = await loop.create_unix_server(server._make_connection, sock=sock)
    except BaseException:
        sock.close()
        _unlink_if_same(path, ident)
        raise
    return server


async def serve_inherited(
    fd: int, handler: Handler, *, read_limit: int = DEFAULT_READ_LIMIT
) -> Server:
    """Serve the listening Unix socket open on ``fd`` (socket activation).

    The socket's path, mode and owner are the service manager's (systemd's ``SocketMode=``,
    ``SocketGroup=``); closing the server leaves its file in place. Raises
    :class:`InvalidAddress` when ``fd`` is not a listening Unix stream socket.
    """
    loop = asyncio.get_running_loop()
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise InvalidAddress(f"inherited descriptor {fd} is not a socket: {exc}") from None
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        raise InvalidAddress(
            f"inherited descriptor {fd} is not a listening Unix stream socket "
            "(ListenStream= a path in the socket unit)"
        )
    sock.setblocking(False)
    address = sock.getsockname()
    path = address if isinstance(address, str) else ""
    server = UnixServer(path, path, None, handler, read_limit)
    server._server = await loop.create_unix_server(server._make_connection, sock=sock)
    return server


async def connect(address: str, *, read_limit: int = DEFAULT_READ_LIMIT) -> Connection:
    """Connect to the Unix socket ``address``; raise `ConnectionLost` if nobody answers."""
    loop = asyncio.get_running_loop()
    _check_path_length(address)

    def factory() -> StreamConnection:
        return StreamConnection(loop, _server_identity, read_limit=read_limit)

    try:
        _, connection = await loop.create_unix_connection(factory, address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            reason += f"; {no_broker_hint()}"
        raise ConnectionLost(f"cannot connect to {address!r}: {reason}") from exc
    return connection
