"""Windows named pipes on the ProactorEventLoop, and the pipe peer's identity.

The Win32 calls (ctypes) sit in functions that check ``sys.platform == "win32"`` first, so
this module imports, and type-checks, on every platform.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from typing import Any, cast

from ..errors import AddressInUse, ConnectionLost, EventBusError, InvalidAddress
from ._address import no_broker_hint
from ._connection import (
    DEFAULT_READ_LIMIT,
    UNKNOWN_PEER,
    Connection,
    PeerCredentials,
)
from ._server import Handler, Server
from ._stream import StreamConnection

__all__ = ["PipeServer", "connect", "local_credentials", "serve"]

logger = logging.getLogger("eventbus.transport")

_PIPE_PREFIX = "\\\\.\\pipe\\"
_MAX_PIPE_NAME = 256  # characters, prefix included (CreateNamedPipe's documented limit)

# winerror.h / winnt.h
_ERROR_ACCESS_DENIED = 5
_ERROR_PIPE_BUSY = 231
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_TOKEN_QUERY = 0x0008
_TOKEN_USER_CLASS = 1  # TOKEN_INFORMATION_CLASS.TokenUser


# -- credentials --------------------------------------------------------------------------


def local_credentials() -> PeerCredentials:
    """Return this process's own credentials, in the form a peer would see them."""
    return PeerCredentials(
        pid=os.getpid(),
        uid=None,
        gid=None,
        exe=os.path.realpath(sys.executable) if sys.executable else None,
        sid=_own_sid(),
    )


# No hold on the peer's process (None): its identity is read from the pid once, at accept.


def _client_credentials(transport: asyncio.BaseTransport) -> tuple[PeerCredentials, None]:
    """The credentials of the client at the other end of an accepted pipe instance."""
    return _pipe_peer(transport, client=True), None


def _server_credentials(transport: asyncio.BaseTransport) -> tuple[PeerCredentials, None]:
    """The credentials of the server process a client pipe is connected to."""
    peer = _pipe_peer(transport, client=False)
    return (local_credentials() if peer == UNKNOWN_PEER else peer), None


def _pipe_peer(transport: asyncio.BaseTransport, *, client: bool) -> PeerCredentials:
    pipe = transport.get_extra_info("pipe")
    handle = getattr(pipe, "handle", None)
    if not isinstance(handle, int):
        return UNKNOWN_PEER
    pid = _pipe_peer_pid(handle, client=client)
    if pid is None:
        return UNKNOWN_PEER
    exe, sid = _process_identity(pid)
    return PeerCredentials(pid=pid, uid=None, gid=None, exe=exe, sid=sid)


@functools.cache
def _win32() -> Any:
    """Load and declare the Win32 functions used here, once."""
    if sys.platform != "win32":
        raise OSError("the Win32 API is only available on Windows")
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    handle_p = ctypes.POINTER(wintypes.HANDLE)
    ulong_p = ctypes.POINTER(wintypes.ULONG)
    dword_p = ctypes.POINTER(wintypes.DWORD)
    signatures: list[tuple[Any, str, type[Any], list[Any]]] = [
        (kernel32, "GetNamedPipeClientProcessId", wintypes.BOOL, [wintypes.HANDLE, ulong_p]),
        (kernel32, "GetNamedPipeServerProcessId", wintypes.BOOL, [wintypes.HANDLE, ulong_p]),
        (kernel32, "OpenProcess", wintypes.HANDLE, [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]),
        (kernel32, "GetCurrentProcess", wintypes.HANDLE, []),
        (kernel32, "CloseHandle", wintypes.BOOL, [wintypes.HANDLE]),
        (kernel32, "LocalFree", ctypes.c_void_p, [ctypes.c_void_p]),
        (
            kernel32,
            "QueryFullProcessImageNameW",
            wintypes.BOOL,
            [wintypes.HANDLE, wintypes.DWORD, wintypes.LPWSTR, dword_p],
        ),
        (advapi32, "OpenProcessToken", wintypes.BOOL, [wintypes.HANDLE, wintypes.DWORD, handle_p]),
        (
            advapi32,
            "GetTokenInformation",
            wintypes.BOOL,
            [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD, dword_p],
        ),
        (
            advapi32,
            "ConvertSidToStringSidW",
            wintypes.BOOL,
            [ctypes.c_void_p, ctypes.POINTER(wintypes.LPWSTR)],
        ),
    ]
    for dll, name, restype, argtypes in signatures:
        function = getattr(dll, name)
        function.restype = restype
        function.argtypes = argtypes
    return type("Win32", (), {"kernel32": kernel32, "advapi32": advapi32})


def _pipe_peer_pid(handle: int, *, client: bool) -> int | None:
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    api = _win32()
    pid = wintypes.ULONG(0)
    if client:
        ok = api.kernel32.GetNamedPipeClientProcessId(handle, ctypes.byref(pid))
    else:
        ok = api.kernel32.GetNamedPipeServerProcessId(handle, ctypes.byref(pid))
    return int(pid.value) if ok and pid.value else None


def _process_identity(pid: int) -> tuple[str | None, str | None]:
    """Return the executable path and the token's user SID of process ``pid``, if readable."""
    if sys.platform != "win32":
        return None, None
    api = _win32()
    process = api.kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not process:
        return None, None
    try:
        return _process_image(process), _token_sid(process)
    finally:
        api.kernel32.CloseHandle(process)


def _own_sid() -> str | None:
    if sys.platform != "win32":
        return None
    try:
        return _token_sid(_win32().kernel32.GetCurrentProcess())
    except OSError:
        return None


def _process_image(process: int) -> str | None:
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    buffer = ctypes.create_unicode_buffer(32768)
    size = wintypes.DWORD(len(buffer))
    if not _win32().kernel32.QueryFullProcessImageNameW(process, 0, buffer, ctypes.byref(size)):
        return None
    return buffer.value or None


def _token_sid(process: int) -> str | None:
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    api = _win32()
    token = wintypes.HANDLE()
    if not api.advapi32.OpenProcessToken(process, _TOKEN_QUERY, ctypes.byref(token)):
        return None
    try:
        needed = wintypes.DWORD(0)
        api.advapi32.GetTokenInformation(token, _TOKEN_USER_CLASS, None, 0, ctypes.byref(needed))
        if not needed.value:
            return None
        info = ctypes.create_string_buffer(needed.value)
        if not api.advapi32.GetTokenInformation(
            token, _TOKEN_USER_CLASS, info, needed, ctypes.byref(needed)
        ):
            return None
        # TOKEN_USER starts with SID_AND_ATTRIBUTES, which starts with the PSID
        sid = ctypes.cast(info, ctypes.POINTER(ctypes.c_void_p))[0]
        text = wintypes.LPWSTR()
        if not api.advapi32.ConvertSidToStringSidW(sid, ctypes.byref(text)):
            return None
        try:
            return text.value
        finally:
            api.kernel32.LocalFree(ctypes.cast(text, ctypes.c_void_p))
    finally:
        api.kernel32.CloseHandle(token)


# -- server and client --------------------------------------------------------------------


def _check_pipe_name(address: str) -> None:
    if not address.lower().startswith(_PIPE_PREFIX) or len(address) == len(_PIPE_PREFIX):
        raise InvalidAddress(f"named pipe address {address!r} must look like \\\\.\\pipe\\<name>")
    if len(address) > _MAX_PIPE_NAME:
        raise InvalidAddress(
            f"named pipe address {address!r} is {len(address)} characters long; "
            f"Windows allows at most {_MAX_PIPE_NAME}"
        )


def _pipe_answers(address: str) -> bool:
    """Return True if a server already owns the pipe name (connecting succeeds or is busy)."""
    if sys.platform != "win32":
        return False
    import _winapi

    try:
        handle = _winapi.CreateFile(
            address,
            _winapi.GENERIC_READ | _winapi.GENERIC_WRITE,
            0,
            _winapi.NULL,
            _winapi.OPEN_EXISTING,
            0,
            _winapi.NULL,
        )
    except OSError as exc:
        # busy: all its instances are taken; denied: it exists and is someone else's
        return getattr(exc, "winerror", None) in (_ERROR_PIPE_BUSY, _ERROR_ACCESS_DENIED)
    _winapi.CloseHandle(handle)
    return True


class PipeServer(Server):
    """A `Server` listening on a Windows named pipe."""

    def __init__(self, address: str, handler: Handler, read_limit: int) -> None:
        """Prepare the server; `serve` attaches the pipe servers asyncio starts."""
        super().__init__(address, handler, _client_credentials, read_limit)
        self._pipes: list[Any] = []

    def _stop_listening(self) -> None:
        pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()

    async def _wait_listener_closed(self) -> None:
        # PipeServer.close() is synchronous; one turn lets the cancelled accept settle
        await asyncio.sleep(0)


async def serve(
    address: str,
    handler: Handler,
    *,
    group: int | str | None = None,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> Server:
    """Listen on the named pipe ``address`` and run ``handler`` for each connection.

    Refuses with `AddressInUse` when a server already owns the pipe name. ``group`` has
    no meaning for a named pipe: its default security descriptor lets this user, SYSTEM
    and Administrators connect, and nobody else write.
    """
    _check_pipe_name(address)
    if read_limit <= 0:
        raise ValueError(f"read_limit must be positive, got {read_limit!r}")
    if sys.platform != "win32":
        raise EventBusError(f"cannot serve on {address!r}: named pipes need Windows")
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.ProactorEventLoop):
        raise EventBusError(
            f"cannot serve on {address!r}: named pipes need the ProactorEventLoop "
            f"(Windows's default), not {type(loop).__name__}"
        )
    if group is not None:
        logger.warning("group %r ignored for the named pipe %s", group, address)
    if _pipe_answers(address):
        raise AddressInUse(f"another broker answers on {address!r}")
    server = PipeServer(address, handler, read_limit)
    try:
        # typeshed narrows the factory to StreamReaderProtocol; any Protocol works
        pipes = await loop.start_serving_pipe(cast(Any, server._make_connection), address)
    except PermissionError as exc:  # FILE_FLAG_FIRST_PIPE_INSTANCE: the name is taken
        raise AddressInUse(f"the pipe {address!r} is already held by another process") from exc
    server._pipes = list(pipes)
    return server


async def connect(address: str, *, read_limit: int = DEFAULT_READ_LIMIT) -> Connection:
    """Connect to the named pipe ``address``; raise `ConnectionLost` if nobody answers."""
    _check_pipe_name(address)
    if sys.platform != "win32":
        raise ConnectionLost(f"cannot connect to {address!r}: named pipes need Windows")
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.ProactorEventLoop):
        raise EventBusError(
            f"cannot connect to {address!r}: named pipes need the ProactorEventLoop "
            f"(Windows's default), not {type(loop).__name__}"
        )

    made: asyncio.Future[None] = loop.create_future()

    def connected(_: StreamConnection) -> None:
        if not made.done():
            made.set_result(None)

    def factory() -> StreamConnection:
        return StreamConnection(loop, _server_credentials, on_made=connected, read_limit=read_limit)

    try:
        _, protocol = await loop.create_pipe_connection(cast(Any, factory), address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):
            reason += f"; {no_broker_hint()}"
        raise ConnectionLost(f"cannot connect to {address!r}: {reason}") from exc
    # create_pipe_connection returns before the transport calls connection_made (unlike
    # create_unix_connection): until then the connection has no transport to write to
    await made
    return cast(StreamConnection, protocol)
