"""``python -m eventbus.demo``: a broker, the demo agent and the demo procmond, live.

Starts each as its own OS process, in this order, each once the previous one is ready:

1. ``python -m eventbus.broker --address A``; ready when it prints "listening on";
2. ``python -m eventbus.demo.agent``; ready when it prints its ``ready:`` line;
3. ``python -m eventbus.demo.procmond``.

Every line they print is relayed with the program's name in front. Ctrl-C (SIGINT), SIGTERM
or the end of ``--duration`` stops them in the reverse order (procmond, agent, broker),
each with SIGTERM, waiting for each to exit; exit status 0 when all stopped cleanly.

By default the broker listens on a private socket in a fresh temporary directory, so the
demo never collides with a broker already running on the default address; ``--address``
picks the address instead (and the demo says so and exits 1 if a broker already answers
there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..eventloop import run
from . import READY

_STOP_TIMEOUT = 10.0
_START_TIMEOUT = 30.0
_COLORS = {"demo": "1", "broker": "36", "agent": "32", "procmond": "33"}
_PR_SET_PDEATHSIG = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eventbus.demo",
        description="Run a broker, a demo process collector and a demo agent as separate "
        "processes and show the events flowing between them. Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--address",
        help="where the broker listens (default: a private socket in a new temporary "
        "directory, removed at the end)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds of running, counted once all three are up "
        "(default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often procmond polls the processes (default: 1.0)",
    )
    return parser


class _Output:
    """Prefixed lines on stdout; carries on silently once nobody reads them."""

    def __init__(self) -> None:
        self.color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.broken = False

    def line(self, name: str, text: str) -> None:
        if self.broken:
            return
        prefix = f"[{name}]"
        if self.color:
            prefix = f"\033[{_COLORS.get(name, '0')}m{prefix}\033[0m"
        try:
            sys.stdout.write(f"{prefix} {text}\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            self.broken = True
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def _die_with_parent() -> None:
    """In the child, before exec (Linux): get SIGTERM when the demo dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Child:
    """One program of the demo: its process, and the task relaying its output."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, out: _Output) -> None:
        self.name = name
        self.proc = proc
        self.out = out
        self.last_lines: deque[str] = deque(maxlen=5)
        self._watch: tuple[Callable[[str], bool], asyncio.Future[bool]] | None = None
        self.relay = asyncio.get_running_loop().create_task(self._relay())

    @classmethod
    async def start(cls, name: str, args: list[str], out: _Output) -> _Child:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8:backslashreplace"
        # The children import this same eventbus, wherever it was imported from.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        options: dict[str, object] = {}
        if sys.platform == "win32":
            import subprocess

            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            # Their own session: a Ctrl-C in the terminal reaches only us, and we stop
            # them one by one in order.
            options["start_new_session"] = True
            if sys.platform.startswith("linux"):
                options["preexec_fn"] = _die_with_parent
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            **options,  # type: ignore[arg-type]
        )
        out.line("demo", f"{name} pid {proc.pid}: python {' '.join(args)}")
        return cls(name, proc, out)

    async def _relay(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        pending = b""
        while True:
            data = await stream.read(1 << 16)
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._line(raw.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            self._line(pending.decode("utf-8", "replace"))
        if self._watch is not None and not self._watch[1].done():
            self._watch[1].set_result(False)

    def _line(self, text: str) -> None:
        self.last_lines.append(text)
        self.out.line(self.name, text)
        if self._watch is not None:
            matches, future = self._watch
            if not future.done() and matches(text):
                future.set_result(True)

    async def wait_for_line(self, matches: Callable[[str], bool], timeout: float) -> bool | None:
        """True once a line matches; False if the output ended first; None on timeout."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.relay.done():
            return False
        self._watch = (matches, future)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._watch = None

    async def stop(self, hurry: asyncio.Event) -> bool:
        """Ask it to stop (SIGTERM), wait; kill it after a while or on ``hurry``.

        True when it exited with status 0, or by our SIGTERM if it was still starting up
        (the handler that makes it stop cleanly was not installed yet).
        """
        proc = self.proc
        killed = False
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                if sys.platform == "win32":
                    proc.terminate()
                else:
                    # Not SIGINT: a Python still importing would die with a traceback.
                    proc.send_signal(signal.SIGTERM)
            exited = asyncio.get_running_loop().create_task(proc.wait())
            hurried = asyncio.get_running_loop().create_task(hurry.wait())
            await asyncio.wait(
                {exited, hurried}, timeout=_STOP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            hurried.cancel()
            if proc.returncode is None:
                self.out.line("demo", f"{self.name} did not stop; killing pid {proc.pid}")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                killed = True
            await exited
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay, 5.0)
        code = proc.returncode
        clean = not killed and code in (0, -signal.SIGTERM)
        self.out.line("demo", f"{self.name} exited with status {code}")
        return clean


def _private_address() -> tuple[str, str | None]:
    """A socket path only this demo uses (and the directory to remove), or a pipe name."""
    if sys.platform == "win32":
        return rf"\\.\pipe\daemoneye-eventbus-demo-{os.getpid()}", None
    base = tempfile.gettempdir()
    # An AF_UNIX path is limited to about 100 bytes; macOS's temp dir alone takes half.
    if len(base) > 40 and os.path.isdir("/tmp"):
        base = "/tmp"
    directory = tempfile.mkdtemp(prefix="eventbus-demo-", dir=base)
    return os.path.join(directory, "eventbus.sock"), directory


def _in_use(lines: deque[str]) -> bool:
    text = "\n".join(lines)
    return "another broker" in text or "refusing to serve" in text


async def _demo(args: argparse.Namespace, out: _Output) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurry = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            out.line("demo", "stopping (Ctrl-C again to kill at once)")
        else:
            hurry.set()
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(on_signal))

    if args.address:
        address, private_dir = args.address, None
    else:
        address, private_dir = _private_address()
    parent = ["--parent-pid", str(os.getpid())]
    steps: list[tuple[str, list[str], Callable[[str], bool]]] = [
        (
            "broker",
            ["-m", "eventbus.broker", "--address", address],
            lambda line: "listening on" in line,
        ),
        (
            "agent",
            ["-m", "eventbus.demo.agent", "--address", address, *parent],
            lambda line: line.startswith(READY),
        ),
        (
            "procmond",
            [
                "-m",
                "eventbus.demo.procmond",
                "--address",
                address,
                "--interval",
                str(args.interval),
                *parent,
            ],
            lambda line: line.startswith(READY),
        ),
    ]
    children: list[_Child] = []
    code = 0
    try:
        out.line("demo", f"broker address: {address}")
        for name, argv, is_ready in steps:
            child = await _Child.start(name, argv, out)
            children.append(child)
            ready = await _first(child.wait_for_line(is_ready, _START_TIMEOUT), stop)
            if ready is not True:
                if not stop.is_set():
                    code = _not_started(child, ready, address, given=bool(args.address), out=out)
                break
        else:
            code = await _watch(children, stop, args.duration, out)
    finally:
        for child in reversed(children):
            if not await child.stop(hurry) and code == 0:
                code = 1
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
    out.line("demo", "stopped" if code == 0 else f"stopped with errors (exit status {code})")
    return code


async def _watch(
    children: list[_Child], stop: asyncio.Event, duration: float | None, out: _Output
) -> int:
    """Run until ``stop``, the end of ``duration`` or the exit of a child (an error: 1)."""
    loop = asyncio.get_running_loop()
    how_long = f"for {duration:g} s" if duration is not None else "until Ctrl-C"
    out.line("demo", f"all three running; live events follow {how_long}")
    exits = {loop.create_task(child.proc.wait()): child for child in children}
    stopped = loop.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {*exits, stopped}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (*exits, stopped):
            task.cancel()
    code = 0
    for task in done:
        if task in exits:
            child = exits[task]
            out.line(
                "demo",
                f"{child.name} exited unexpectedly (status {child.proc.returncode}); "
                "stopping the others",
            )
            code = 1
    if not done:
        out.line("demo", f"{duration:g} s are up; stopping")
    return code


async def _first(wait: Coroutine[Any, Any, bool | None], stop: asyncio.Event) -> bool | None:
    """The result of ``wait`` (a wait_for_line), or False if ``stop`` came first."""
    loop = asyncio.get_running_loop()
    waiting = loop.create_task(wait)
    stopped = loop.create_task(stop.wait())
    await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not waiting.done():
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return False
    return waiting.result()


def _not_started(
    child: _Child, ready: bool | None, address: str, *, given: bool, out: _Output
) -> int:
    """Say why ``child`` did not get ready; the exit status of the demo."""
    if ready is None:
        out.line("demo", f"{child.name} did not get ready within {_START_TIMEOUT:g} s")
    elif given and child.name == "broker" and _in_use(child.last_lines):
        out.line(
            "demo",
            f"a broker is already listening on {address}: stop it, choose another "
            "--address, or leave --address out to let the demo use a private one",
        )
    else:
        out.line("demo", f"{child.name} exited before it was ready")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.interval <= 0:
        parser.error("--interval must be positive")
    out = _Output()
    if importlib.util.find_spec("psutil") is None:
        out.line(
            "demo",
            "the demo's process collector needs psutil: "
            "pip install 'daemoneye-eventbus[demo]' (or: pip install psutil)",
        )
        return 1
    try:
        return run(_demo(args, out))
    except KeyboardInterrupt:  # a signal before the handlers were in place
        return 1


if __name__ == "__main__":
    sys.exit(main())
