"""The transport: connected byte streams with OS-verified peer identity, on every platform.

`serve` and `connect` give a `Connection` with the same API whether it runs over a Unix
domain socket (Linux, macOS, the BSDs; asyncio or uvloop) or a Windows named pipe
(ProactorEventLoop); `memory_pair` gives an in-process pair with no socket at all. The
implementation is chosen once, here; nothing above this package knows which one runs.
"""

from __future__ import annotations

import sys

from ..errors import InvalidAddress
from ._activation import inherited_listener
from ._address import default_address
from ._connection import (
    DEFAULT_HIGH_WATER,
    DEFAULT_READ_LIMIT,
    Connection,
    PeerCredentials,
    Receiver,
    sid_problem,
)
from ._memory import memory_pair as _memory_pair
from ._server import Handler, Server

if sys.platform == "win32":
    from ._windows import connect, local_credentials, serve

    async def serve_inherited(fd: int, handler: Handler, *, read_limit: int = 0) -> Server:
        """Socket activation is for Unix sockets; a named pipe cannot be inherited so."""
        raise InvalidAddress("socket activation (LISTEN_FDS) needs a Unix domain socket")
else:
    from ._unix import connect, local_credentials, serve, serve_inherited

__all__ = [
    "DEFAULT_HIGH_WATER",
    "DEFAULT_READ_LIMIT",
    "Connection",
    "PeerCredentials",
    "Receiver",
    "Server",
    "connect",
    "default_address",
    "inherited_listener",
    "local_credentials",
    "memory_pair",
    "serve",
    "serve_inherited",
    "sid_problem",
]


def memory_pair() -> tuple[Connection, Connection]:
    """Return two in-process connections joined to each other, with no socket between them.

    What one writes the other reads. Each side's peer credentials are this process's own
    (``os.getpid()``, ``os.getuid()``, ``os.getgid()``, the resolved ``sys.executable``).
    The broker uses it for clients embedded in its own event loop, and tests use it.
    """
    return _memory_pair(local_credentials())
