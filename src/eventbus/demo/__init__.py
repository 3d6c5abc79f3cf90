"""The demo: a broker, a process collector and an agent as three separate OS processes.

``python -m eventbus.demo`` (``make demo``) starts them and relays what each prints:

- ``python -m eventbus.broker`` on the embedded default policy;
- ``python -m eventbus.demo.agent``: subscribes to process events, heartbeats and client
  presence, prints each event as it arrives and sends ``procmond`` a task now and then;
- ``python -m eventbus.demo.procmond``: polls the machine's processes with psutil and
  publishes what starts and stops, plus heartbeats, and answers the agent's tasks.

What is here is shared by the three programs of the demo only; it is not part of the
package's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from ..client import Client, connect
from ..errors import EventBusError
from ..transport import default_address

__all__ = ["READY", "connect_as", "exit_with_parent", "say", "stop_on_signals"]

#: A demo program prints a line starting with this once it is connected and subscribed;
#: the orchestrator waits for it before starting the next program.
READY = "ready:"


def say(message: str) -> None:
    """Print one line at once (the orchestrator relays it while the program runs)."""
    try:
        print(message, flush=True)
    except BrokenPipeError:
        # Whoever read our output is gone; keep running until told to stop, silently.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def stop_on_signals(stop: asyncio.Event) -> int:
    """Set ``stop`` on SIGINT, SIGTERM and (where it exists) SIGHUP; return how many."""
    loop = asyncio.get_running_loop()
    installed = 0
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        installed += 1
    return installed


async def exit_with_parent(parent_pid: int, stop: asyncio.Event, name: str) -> None:
    """Set ``stop`` once ``parent_pid`` is no longer our parent (it died, we were re-parented).

    The orchestrator starts the demo programs in their own session so that a Ctrl-C in the
    terminal reaches only the orchestrator, which then stops them in order. Had the
    orchestrator itself been killed outright, this keeps them from running on as orphans.
    """
    if sys.platform == "win32":  # the parent pid of a Windows process never changes
        return
    while not stop.is_set():
        if os.getppid() != parent_pid:
            say(f"{name}: the demo that started me (pid {parent_pid}) is gone; stopping")
            stop.set()
            return
        await asyncio.sleep(0.5)


async def connect_as(principal: str, name: str, address: str | None) -> tuple[Client, str] | None:
    """Connect as ``principal`` (client name ``demo NAME[pid]``); None, said why, on failure."""
    target = address or default_address()
    try:
        client = await connect(
            target, principal=principal, client_name=f"demo {name}[{os.getpid()}]"
        )
    except (EventBusError, OSError) as exc:
        say(f"{name}: cannot connect to the broker at {target}: {exc}")
        return None
    return client, target
