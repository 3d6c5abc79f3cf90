"""Real OS processes for the integration tests: a broker, collector processes, raw sockets.

The tests load this module as a plugin (``pytest_plugins = ["_procs"]``) for its fixtures and
import its helpers with ``from _procs import ...`` (pytest puts ``tests/`` on ``sys.path``).

Every child runs ``sys.executable`` with the environment of the test run, so a run with
``EVENTBUS_NO_EXTENSIONS=1`` runs the broker and the clients on the pure-Python core too.
Children print lines on stdout; the tests wait for the line they need with a deadline that
only ever fails a test that hangs: nothing here sleeps for a success to happen.

(PYTEST_DONT_REWRITE: the test modules import this module before pytest loads it as a
plugin, too late for assertion rewriting; its checks use ``pytest.fail`` with diagnostics.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import eventbus
from eventbus.protocol import PROTOCOL_VERSION, decode_frame, encode_frame
from eventbus.v1 import frames_pb2

#: How long any one step may take before the test fails (a guard against hangs, never a
#: duration a test relies on).
DEADLINE = 30.0

PROCS_DIR = Path(__file__).resolve().parent / "procs"
COLLECTOR = PROCS_DIR / "collector.py"
# The eventbus the tests import is the one the children must run.
_PACKAGE_ROOT = str(Path(eventbus.__file__).resolve().parent.parent)


def child_env(**extra: str) -> dict[str, str]:
    """The test run's environment (backend selection included) with this eventbus first."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("EVENTBUS_ADDRESS", None)
    env.update(extra)
    return env


class _Lines:
    """The lines of a child's stream, collected by a thread so nothing blocks on a pipe."""

    _EOF = object()

    def __init__(self, stream: IO[str], name: str) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self.history: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), name=name, daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self.history.append(line.rstrip("\n"))
                self._queue.put(line.rstrip("\n"))
        self._queue.put(self._EOF)

    def next(self, deadline: float) -> str | None:
        """The next line, None at end of stream; raises ``TimeoutError`` past ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            item = self._queue.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None
        if item is self._EOF:
            self._queue.put(item)  # stays at the end for later readers
            return None
        assert isinstance(item, str)
        return item

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class Child:
    """A child process whose stdout and stderr are read line by line in the background."""

    def __init__(
        self,
        argv: list[str],
        name: str,
        *,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.argv = argv
        self.popen = subprocess.Popen(
            argv,
            pass_fds=pass_fds,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or child_env(),
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self.stdout = _Lines(self.popen.stdout, f"{name}-stdout")
        self.stderr = _Lines(self.popen.stderr, f"{name}-stderr")

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def diagnostics(self) -> str:
        """The child's output so far, for failure messages."""
        out = "\n".join(self.stdout.history[-30:])
        err = "\n".join(self.stderr.history[-30:])
        return (
            f"{self.name} (pid {self.pid}, exit code {self.popen.poll()})\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def wait_line(self, matches: Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """The next stdout line for which ``matches`` is true (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.stdout.next(deadline)
            except TimeoutError:
                pytest.fail(
                    f"no expected line from {self.name} within {timeout:g} s\n" + self.diagnostics()
                )
            if line is None:
                self.popen.wait(timeout=DEADLINE)
                pytest.fail(f"{self.name} ended before the expected line\n" + self.diagnostics())
            if matches(line):
                return line

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout:g} s\n" + self.diagnostics())
        self.stdout.join(DEADLINE)
        self.stderr.join(DEADLINE)
        return code

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def reap(self) -> None:
        """Kill the child if it still runs, and collect it (teardown: never leave one)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=DEADLINE)
        if self.popen.stdin is not None:
            # The child is gone: a broken pipe on the last flush is expected.
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        self.stdout.join(DEADLINE)
        self.stderr.join(DEADLINE)


class CollectorProc(Child):
    """``tests/procs/collector.py``: speaks JSON lines (see its docstring)."""

    def __init__(self, address: str, principal: str, *args: str, name: str) -> None:
        argv = [sys.executable, str(COLLECTOR), "--address", address, "--principal", principal]
        super().__init__([*argv, *args], name)
        self.principal = principal
        self.ready: dict[str, Any] = {}

    def expect(self, event: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """The next JSON line whose ``event`` is ``event`` (other lines are skipped)."""

        def matches(line: str) -> bool:
            try:
                return bool(json.loads(line).get("event") == event)
            except ValueError:
                return False

        message: dict[str, Any] = json.loads(self.wait_line(matches, timeout))
        return message

    async def aexpect(self, event: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """:meth:`expect` without blocking the test's event loop."""
        return await asyncio.to_thread(self.expect, event, timeout)

    def wait_ready(self) -> dict[str, Any]:
        line = self.wait_line(lambda text: '"event": "ready"' in text or '"refused"' in text)
        message: dict[str, Any] = json.loads(line)
        if message["event"] != "ready":
            pytest.fail(f"{self.name} was refused: {message}\n" + self.diagnostics())
        self.ready = message
        return message

    async def acommand(self, line: str, answer: str) -> dict[str, Any]:
        """Send a command line and wait for its answer (the line whose event is ``answer``)."""
        self.send(line)
        return await self.aexpect(answer)

    async def astop(self) -> dict[str, list[dict[str, Any]]]:
        """Stop it; return what it received per subscription, and check it exits 0."""
        report = await self.acommand("stop", "report")
        code = await asyncio.to_thread(self.wait_exit)
        if code != 0 or report["failures"]:
            pytest.fail(f"{self.name} failed: {report['failures']}\n" + self.diagnostics())
        received: dict[str, list[dict[str, Any]]] = report["received"]
        return received


class Spawner:
    """Starts collector processes for one test and reaps every one of them afterwards."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.children: list[Child] = []

    def collector(
        self,
        principal: str,
        *subscribe: str,
        ack_topic: str | None = None,
        echo: bool = False,
        pad: int = 0,
        reconnect: bool = True,
        name: str | None = None,
        client_name: str | None = None,
        address: str | None = None,
        wait: bool = True,
    ) -> CollectorProc:
        """Start a collector connected as ``principal``; wait for its ``ready`` line."""
        args: list[str] = []
        for spec in subscribe:
            args += ["--subscribe", spec]
        if ack_topic:
            args += ["--ack-topic", ack_topic]
        if echo:
            args.append("--echo")
        if pad:
            args += ["--pad", str(pad)]
        if not reconnect:
            args.append("--no-reconnect")
        if client_name:
            args += ["--client-name", client_name]
        label = name or f"{principal}-{len(self.children)}"
        args += ["--name", label]
        child = CollectorProc(address or self.address, principal, *args, name=label)
        self.children.append(child)
        if wait:
            child.wait_ready()
        return child

    async def acollector(self, principal: str, *subscribe: str, **options: Any) -> CollectorProc:
        """:meth:`collector` without blocking the test's event loop."""
        return await asyncio.to_thread(lambda: self.collector(principal, *subscribe, **options))

    def reap(self) -> None:
        for child in self.children:
            child.reap()


class BrokerProc(Child):
    """``python -m eventbus.broker`` on a socket in a private temporary directory."""

    def __init__(self, address: str, *args: str, name: str = "broker") -> None:
        self.address = address
        argv = [sys.executable, "-m", "eventbus.broker", "--address", address]
        super().__init__([*argv, "--stats-interval", "0", *args], name)

    def wait_listening(self) -> None:
        line = self.wait_line(lambda text: "listening on" in text)
        assert line.endswith(self.address), line

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the broker and wait for it to exit; returns the exit code."""
        if self.popen.poll() is None:
            self.signal(signum)
        return self.wait_exit()

    async def astop(self, signum: int = signal.SIGTERM) -> int:
        return await asyncio.to_thread(self.stop, signum)


def short_tmpdir() -> str:
    """A fresh directory whose paths fit in ``sockaddr_un`` (pytest's tmp_path may not)."""
    return tempfile.mkdtemp(prefix="eb-it-", dir="/tmp" if os.path.isdir("/tmp") else None)


def start_broker(directory: str, *args: str) -> BrokerProc:
    """Start a broker on ``DIRECTORY/bus/eventbus.sock`` and wait until it listens."""
    broker = BrokerProc(os.path.join(directory, "bus", "eventbus.sock"), *args)
    try:
        broker.wait_listening()
    except BaseException:
        broker.reap()
        raise
    return broker


@pytest.fixture
def bus_dir() -> Iterator[str]:
    """A private short-path directory, removed (with any socket in it) afterwards."""
    directory = short_tmpdir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _stop_cleanly(proc: BrokerProc) -> None:
    try:
        if proc.popen.poll() is None:
            code = proc.stop(signal.SIGTERM)
            assert code == 0, "broker did not stop cleanly\n" + proc.diagnostics()
    finally:
        proc.reap()


def _unix_only() -> None:
    if sys.platform == "win32":
        pytest.skip("broker processes on Unix sockets, stopped by SIGTERM; pipes: test_windows_bus")


@pytest.fixture
def broker(bus_dir: str) -> Iterator[BrokerProc]:
    """A broker process on the embedded default policy.

    Afterwards it gets SIGTERM and must exit 0; a test may stop it earlier itself. Skipped on
    Windows, which cannot send SIGTERM (the bus over pipes is test_windows_bus's).
    """
    _unix_only()
    proc = start_broker(bus_dir)
    try:
        yield proc
    finally:
        _stop_cleanly(proc)


@pytest.fixture
def broker_with(bus_dir: str) -> Iterator[Callable[..., BrokerProc]]:
    """Starts brokers with extra command-line options, each on its own socket (skipped on
    Windows, as ``broker``).

    ``broker_with("--config", path)``; ``broker_with(same_as=old)`` starts a new broker on
    the address of ``old`` (which must have stopped). Each one gets SIGTERM afterwards and
    must exit 0.
    """
    _unix_only()
    started: list[BrokerProc] = []

    def start(*args: str, same_as: BrokerProc | None = None) -> BrokerProc:
        if same_as is not None:
            directory = os.path.dirname(os.path.dirname(same_as.address))
        else:
            directory = os.path.join(bus_dir, f"b{len(started)}")
            os.mkdir(directory, 0o700)
        proc = start_broker(directory, *args)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            _stop_cleanly(proc)


@pytest.fixture
def spawn(broker: BrokerProc) -> Iterator[Spawner]:
    """Starts collector processes on ``broker``; every one is reaped before the broker stops."""
    spawner = Spawner(broker.address)
    try:
        yield spawner
    finally:
        spawner.reap()


@pytest.fixture
def spawn_on(
    broker_with: Callable[..., BrokerProc],
) -> Iterator[Callable[[BrokerProc], Spawner]]:
    """Spawners for brokers started by ``broker_with``; every child is reaped before the
    brokers stop."""
    spawners: list[Spawner] = []

    def make(proc: BrokerProc) -> Spawner:
        spawners.append(Spawner(proc.address))
        return spawners[-1]

    try:
        yield make
    finally:
        for spawner in spawners:
            spawner.reap()


# --- raw protocol -------------------------------------------------------------------------


class RawClient:
    """A connection that speaks frames directly, bypassing every check of the real client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.welcome: frames_pb2.Welcome | None = None

    @classmethod
    async def connect(
        cls, address: str, principal: str | None = None, *, client_name: str = "raw"
    ) -> RawClient:
        """Connect; with ``principal``, send Hello and expect Welcome."""
        reader, writer = await asyncio.open_unix_connection(address)
        raw = cls(reader, writer)
        if principal is not None:
            hello = frames_pb2.Hello(
                protocol_version=PROTOCOL_VERSION, principal=principal, client_name=client_name
            )
            raw.send(frames_pb2.Frame(hello=hello))
            frame = await raw.read()
            assert frame is not None and frame.WhichOneof("body") == "welcome", frame
            raw.welcome = frame.welcome
        return raw

    def send(self, frame: frames_pb2.Frame) -> None:
        self.writer.write(encode_frame(frame))

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, timeout: float = DEADLINE) -> frames_pb2.Frame | None:
        """The next frame, or None at end of stream."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(4), timeout)
            body = await asyncio.wait_for(
                self.reader.readexactly(int.from_bytes(header, "little")), timeout
            )
        except asyncio.IncompleteReadError:
            return None
        except (ConnectionError, OSError):
            return None
        except asyncio.TimeoutError:
            pytest.fail(f"no frame from the broker within {timeout:g} s")
        return decode_frame(body)

    async def read_until(self, kind: str) -> tuple[frames_pb2.Frame, list[frames_pb2.Frame]]:
        """Read until a frame of ``kind``; returns it and the frames before it."""
        before: list[frames_pb2.Frame] = []
        while True:
            frame = await self.read()
            assert frame is not None, f"connection closed before a {kind} frame: {before}"
            if frame.WhichOneof("body") == kind:
                return frame, before
            before.append(frame)

    async def round_trip(self, nonce: int = 99) -> list[frames_pb2.Frame]:
        """Ping and wait for the Pong; returns every frame the broker sent before it."""
        self.send(frames_pb2.Frame(ping=frames_pb2.Ping(nonce=nonce)))
        pong, before = await self.read_until("pong")
        assert pong.pong.nonce == nonce
        return before

    async def close(self) -> None:
        self.writer.close()
        # The broker may have closed first: nothing is left to flush then.
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def leftover_brokers(address: str) -> list[str]:
    """Command lines of broker processes still serving ``address`` (should be none)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline") if Path("/proc").is_dir() else []:
        try:
            cmdline = entry.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "eventbus.broker" in cmdline and address in cmdline:
            found.append(cmdline)
    return found


def sigkill(child: Child) -> None:
    """Kill without any chance to say goodbye, and collect the process."""
    child.popen.send_signal(signal.SIGKILL)
    child.popen.wait(timeout=DEADLINE)
