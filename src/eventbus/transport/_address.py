"""Where the broker listens when no address is given."""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["ADDRESS_ENV", "WINDOWS_DEFAULT_PIPE", "default_address", "no_broker_hint"]

#: The environment variable that overrides the default address on every platform.
ADDRESS_ENV = "EVENTBUS_ADDRESS"
#: The default named pipe on Windows.
WINDOWS_DEFAULT_PIPE = r"\\.\pipe\daemoneye-eventbus"
_SOCKET_DIR = "daemoneye"
_SOCKET_NAME = "eventbus.sock"


def default_address() -> str:
    """Return the address the broker listens on and clients connect to by default.

    In order: ``$EVENTBUS_ADDRESS`` when set and not empty; on Windows the named pipe
    ``\\\\.\\pipe\\daemoneye-eventbus``; ``$XDG_RUNTIME_DIR/daemoneye/eventbus.sock`` when
    ``XDG_RUNTIME_DIR`` is set; else ``<tempdir>/daemoneye-<uid>/eventbus.sock``, a per-user
    directory under the system temporary directory.
    """
    address = os.environ.get(ADDRESS_ENV)
    if address:
        return address
    if sys.platform == "win32":
        return WINDOWS_DEFAULT_PIPE
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return os.path.join(runtime_dir, _SOCKET_DIR, _SOCKET_NAME)
    return os.path.join(tempfile.gettempdir(), f"{_SOCKET_DIR}-{os.getuid()}", _SOCKET_NAME)


def no_broker_hint() -> str:
    """What to do when nothing listens at an address, for the end of a connect error."""
    return (
        "no broker appears to be running there: start one with `eventbus broker` "
        f"or `python -m eventbus.broker`, or set {ADDRESS_ENV} (or --address) to the "
        "address it listens on"
    )
