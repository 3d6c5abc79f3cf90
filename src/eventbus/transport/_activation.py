"""Socket activation: the listening socket a service manager (systemd) handed over.

The protocol of ``sd_listen_fds(3)``: ``LISTEN_PID`` names the process meant to take the
sockets, ``LISTEN_FDS`` says how many there are, and they are open from fd 3 on. The
variables are removed once read, so a child of the broker does not think they are its own.
"""

from __future__ import annotations

import os

from ..errors import InvalidAddress

__all__ = ["LISTEN_FDS_START", "inherited_listener"]

#: The first inherited descriptor (``SD_LISTEN_FDS_START``).
LISTEN_FDS_START = 3


def inherited_listener() -> int | None:
    """The descriptor of the one socket passed to this process, or None when none was.

    Raises :class:`~eventbus.errors.InvalidAddress` when more than one socket was passed:
    the broker listens on one address.
    """
    pid = os.environ.get("LISTEN_PID", "")
    count = os.environ.get("LISTEN_FDS", "")
    if not pid or not count:
        return None
    if not pid.isdigit() or int(pid) != os.getpid():
        return None  # meant for another process (our parent, typically)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count.isdigit() or int(count) == 0:
        return None
    if int(count) != 1:
        raise InvalidAddress(
            f"LISTEN_FDS={count}: the broker takes exactly one listening socket; give the "
            "socket unit one ListenStream="
        )
    return LISTEN_FDS_START
