"""Windows named pipes on the ProactorEventLoop, and the pipe peer's identity.

The Win32 calls (ctypes) sit in functions that check ``sys.platform == "win32"`` first, so
this module imports, and type-checks, on every platform.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, cast

from ..errors import AddressInUse, ConnectionLost, EventBusError, InvalidAddress
from ._address import no_broker_hint
from ._connection import (
    DEFAULT_READ_LIMIT,
    UNKNOWN_PEER,
    Connection,
    PeerCredentials,
    sid_problem,
)
from ._server import Handler, Server
from ._stream import StreamConnection

__all__ = ["PipeServer", "connect", "local_credentials", "serve"]

_PIPE_PREFIX = "\\\\.\\pipe\\"
_MAX_PIPE_NAME = 256  # characters, prefix included (CreateNamedPipe's documented limit)

# winerror.h / winnt.h
_ERROR_ACCESS_DENIED = 5
_ERROR_PIPE_BUSY = 231
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_TOKEN_QUERY = 0x0008
_TOKEN_USER_CLASS = 1  # TOKEN_INFORMATION_CLASS.TokenUser
_TOKEN_GROUPS_CLASS = 2  # TOKEN_INFORMATION_CLASS.TokenGroups
_SE_GROUP_ENABLED = 0x0004
_SE_GROUP_USE_FOR_DENY_ONLY = 0x0010
_PIPE_REJECT_REMOTE_CLIENTS = 0x0008
_SDDL_REVISION_1 = 1


# -- credentials --------------------------------------------------------------------------


def local_credentials() -> PeerCredentials:
    """Return this process's own credentials, in the form a peer would see them."""
    sid, group_sids = _own_identity()
    return PeerCredentials(
        pid=os.getpid(),
        uid=None,
        gid=None,
        exe=os.path.realpath(sys.executable) if sys.executable else None,
        sid=sid,
        group_sids=group_sids,
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
    exe, sid, group_sids = _process_identity(pid)
    return PeerCredentials(pid=pid, uid=None, gid=None, exe=exe, sid=sid, group_sids=group_sids)


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
        (
            advapi32,
            "ConvertStringSecurityDescriptorToSecurityDescriptorW",
            wintypes.BOOL,
            [wintypes.LPCWSTR, wintypes.DWORD, ctypes.POINTER(ctypes.c_void_p), ulong_p],
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


def _process_identity(pid: int) -> tuple[str | None, str | None, frozenset[str]]:
    """Return the executable path, the token's user SID and its group SIDs of process
    ``pid``, as far as they are readable."""
    if sys.platform != "win32":
        return None, None, frozenset()
    api = _win32()
    process = api.kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not process:
        return None, None, frozenset()
    try:
        return (_process_image(process), *_token_identity(process))
    finally:
        api.kernel32.CloseHandle(process)


def _own_identity() -> tuple[str | None, frozenset[str]]:
    if sys.platform != "win32":
        return None, frozenset()
    try:
        return _token_identity(_win32().kernel32.GetCurrentProcess())
    except OSError:
        return None, frozenset()


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


def effective_group_sids(groups: Iterable[tuple[str | None, int]]) -> frozenset[str]:
    """The SIDs of a token's ``(sid, attributes)`` groups that grant access.

    A group must be enabled; a deny-only one (a UAC-filtered Administrators, say) only
    ever refuses access on Windows, so it never satisfies a binding either.
    """
    return frozenset(
        sid
        for sid, attributes in groups
        if sid is not None
        and attributes & _SE_GROUP_ENABLED
        and not attributes & _SE_GROUP_USE_FOR_DENY_ONLY
    )


def _token_identity(process: int) -> tuple[str | None, frozenset[str]]:
    """The user SID and the effective group SIDs of ``process``'s token."""
    if sys.platform != "win32":
        return None, frozenset()
    import ctypes
    from ctypes import wintypes

    class SidAndAttributes(ctypes.Structure):
        _fields_ = (("sid", ctypes.c_void_p), ("attributes", wintypes.DWORD))

    api = _win32()
    token = wintypes.HANDLE()
    if not api.advapi32.OpenProcessToken(process, _TOKEN_QUERY, ctypes.byref(token)):
        return None, frozenset()
    try:
        user = _token_information(token, _TOKEN_USER_CLASS)
        # TOKEN_USER is one SID_AND_ATTRIBUTES
        sid = None if user is None else _sid_text(SidAndAttributes.from_buffer(user).sid)
        groups = _token_information(token, _TOKEN_GROUPS_CLASS)
        if groups is None:
            return sid, frozenset()
        # TOKEN_GROUPS: a DWORD count, then the array, aligned as a pointer is
        count = wintypes.DWORD.from_buffer(groups).value
        offset = ctypes.alignment(SidAndAttributes)
        entries = (SidAndAttributes * count).from_buffer(groups, offset)
        return sid, effective_group_sids((_sid_text(g.sid), g.attributes) for g in entries)
    finally:
        api.kernel32.CloseHandle(token)


def _token_information(token: Any, information_class: int) -> Any:
    """The buffer GetTokenInformation fills for ``information_class``, or None."""
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    api = _win32()
    needed = wintypes.DWORD(0)
    api.advapi32.GetTokenInformation(token, information_class, None, 0, ctypes.byref(needed))
    if not needed.value:
        return None
    info = ctypes.create_string_buffer(needed.value)
    if not api.advapi32.GetTokenInformation(
        token, information_class, info, needed, ctypes.byref(needed)
    ):
        return None
    return info


def _sid_text(sid: int | None) -> str | None:
    if sys.platform != "win32" or not sid:
        return None
    import ctypes
    from ctypes import wintypes

    api = _win32()
    text = wintypes.LPWSTR()
    if not api.advapi32.ConvertSidToStringSidW(sid, ctypes.byref(text)):
        return None
    try:
        return text.value
    finally:
        api.kernel32.LocalFree(ctypes.cast(text, ctypes.c_void_p))


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


def pipe_sddl(user_sid: str, group_sid: str | None = None) -> str:
    """The security descriptor (SDDL) every instance of the broker's pipe is created with.

    ``user_sid``, the broker's own user, has full control; ``group_sid``, when given, may
    read and write (connect). Nobody else is granted anything, SYSTEM and Administrators
    included, and the DACL is protected from inheritance. Both must be string SIDs: they
    are spliced into the SDDL text.
    """
    for sid in (user_sid, group_sid):
        problem = None if sid is None else sid_problem(sid)
        if problem is not None:
            raise EventBusError(f"cannot restrict a named pipe to {problem}")
    sddl = f"D:P(A;;GA;;;{user_sid})"
    if group_sid is not None and group_sid != user_sid:
        sddl += f"(A;;GRGW;;;{group_sid})"
    return sddl


class _PipeSecurity:
    """A SECURITY_ATTRIBUTES holding the security descriptor of an SDDL string.

    The descriptor is copied into memory Python owns (a self-relative descriptor holds no
    pointers), so nothing needs freeing when the listener goes.
    """

    def __init__(self, sddl: str) -> None:
        if sys.platform != "win32":
            raise OSError("security descriptors are only available on Windows")
        import ctypes
        from ctypes import wintypes

        class SecurityAttributes(ctypes.Structure):
            _fields_ = (
                ("length", wintypes.DWORD),
                ("descriptor", ctypes.c_void_p),
                ("inherit", wintypes.BOOL),
            )

        api = _win32()
        descriptor = ctypes.c_void_p()
        size = wintypes.ULONG(0)
        convert = api.advapi32.ConvertStringSecurityDescriptorToSecurityDescriptorW
        if not convert(sddl, _SDDL_REVISION_1, ctypes.byref(descriptor), ctypes.byref(size)):
            raise ctypes.WinError(ctypes.get_last_error())
        try:
            self._descriptor = ctypes.create_string_buffer(
                ctypes.string_at(descriptor, size.value), size.value
            )
        finally:
            api.kernel32.LocalFree(descriptor)
        self._attributes = SecurityAttributes(
            ctypes.sizeof(SecurityAttributes), ctypes.addressof(self._descriptor), False
        )
        #: the SECURITY_ATTRIBUTES pointer CreateNamedPipe takes
        self.address: int = ctypes.addressof(self._attributes)


if sys.platform == "win32":
    import _winapi
    from asyncio import windows_events, windows_utils

    class _SecureListener(windows_events.PipeServer):
        """asyncio's pipe listener, creating every pipe instance with our security
        descriptor and ``PIPE_REJECT_REMOTE_CLIENTS`` (asyncio's passes neither)."""

        def __init__(self, address: str, security: _PipeSecurity) -> None:
            self._security = security
            super().__init__(address)  # creates the first instance

        def _server_pipe_handle(self, first: bool) -> windows_utils.PipeHandle | None:
            if self.closed():
                return None
            flags = _winapi.PIPE_ACCESS_DUPLEX | _winapi.FILE_FLAG_OVERLAPPED
            if first:
                flags |= _winapi.FILE_FLAG_FIRST_PIPE_INSTANCE
            handle = _winapi.CreateNamedPipe(
                cast(Any, self)._address,
                flags,
                _winapi.PIPE_TYPE_MESSAGE
                | _winapi.PIPE_READMODE_MESSAGE
                | _winapi.PIPE_WAIT
                | _PIPE_REJECT_REMOTE_CLIENTS,
                _winapi.PIPE_UNLIMITED_INSTANCES,
                windows_utils.BUFSIZE,
                windows_utils.BUFSIZE,
                _winapi.NMPWAIT_WAIT_FOREVER,
                self._security.address,
            )
            pipe = windows_utils.PipeHandle(handle)
            cast(Any, self)._free_instances.add(pipe)
            return pipe


def _listen(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    address: str,
    security: _PipeSecurity,
) -> Any:
    """``ProactorEventLoop.start_serving_pipe`` on a `_SecureListener`, which it returns.

    The accept loop is asyncio's own (the same in CPython 3.10 to 3.13): asyncio gives
    no way to choose the security of the pipe instances it creates.
    """
    listener: Any  # a _SecureListener, a class that exists on Windows only
    if sys.platform == "win32":
        listener = _SecureListener(address, security)
    else:
        raise OSError("named pipes are only available on Windows")
    proactor = cast(Any, loop)._proactor

    def accept(done: asyncio.Future[Any] | None = None) -> None:
        pipe = None
        try:
            if done is not None:
                pipe = done.result()
                listener._free_instances.discard(pipe)
                if listener.closed():  # a client connected as the listener closed
                    pipe.close()
                    return
                cast(Any, loop)._make_duplex_pipe_transport(
                    pipe, factory(), extra={"addr": address}
                )
            pipe = listener._get_unconnected_pipe()
            if pipe is None:
                return
            done = proactor.accept_pipe(pipe)
        except BrokenPipeError:  # the client went before it was accepted
            if pipe is not None and pipe.fileno() != -1:
                pipe.close()
            loop.call_soon(accept)
        except OSError as exc:
            if pipe is not None and pipe.fileno() != -1:
                loop.call_exception_handler(
                    {"message": "Pipe accept failed", "exception": exc, "pipe": pipe}
                )
                pipe.close()
            loop.call_soon(accept)
        except asyncio.CancelledError:
            if pipe is not None:
                pipe.close()
        else:
            listener._accept_pipe_future = done
            done.add_done_callback(accept)

    loop.call_soon(accept)
    return listener


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

    Refuses with `AddressInUse` when a server already owns the pipe name. Every pipe
    instance refuses remote clients (``PIPE_REJECT_REMOTE_CLIENTS``) and has a DACL
    (`pipe_sddl`) that lets this process's user connect and nobody else, except the
    members of ``group``, a group SID (``"S-1-5-32-545"``), when one is given.
    """
    _check_pipe_name(address)
    if read_limit <= 0:
        raise ValueError(f"read_limit must be positive, got {read_limit!r}")
    if group is not None and (not isinstance(group, str) or sid_problem(group) is not None):
        raise EventBusError(
            f"cannot serve on {address!r}: on Windows the group allowed to connect is a "
            f"group SID such as 'S-1-5-32-545', not {group!r}"
        )
    if sys.platform != "win32":
        raise EventBusError(f"cannot serve on {address!r}: named pipes need Windows")
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.ProactorEventLoop):
        raise EventBusError(
            f"cannot serve on {address!r}: named pipes need the ProactorEventLoop "
            f"(Windows's default), not {type(loop).__name__}"
        )
    user_sid = _own_identity()[0]
    if user_sid is None:
        raise EventBusError(
            f"cannot serve on {address!r}: this process's user SID, which the pipe's "
            "security descriptor grants access to, cannot be read"
        )
    if _pipe_answers(address):
        raise AddressInUse(f"another broker answers on {address!r}")
    security = _PipeSecurity(pipe_sddl(user_sid, group))
    server = PipeServer(address, handler, read_limit)
    try:
        listener = _listen(loop, server._make_connection, address, security)
    except PermissionError as exc:  # FILE_FLAG_FIRST_PIPE_INSTANCE: the name is taken
        raise AddressInUse(f"the pipe {address!r} is already held by another process") from exc
    server._pipes = [listener]
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
