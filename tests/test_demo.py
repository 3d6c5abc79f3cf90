"""``python -m eventbus.demo``: three real processes, live events, a clean stop, no orphans.

The demo runs as a subprocess of the test with the test run's environment, so under
``EVENTBUS_NO_EXTENSIONS=1`` the broker and the demo programs run on the pure-Python core.
The deadlines only fail a hang; the SIGINT test waits for the first event, not for time.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

psutil = pytest.importorskip(
    "psutil", reason="the demo's process collector needs psutil (the 'demo' extra)"
)

import eventbus  # noqa: E402
from eventbus.demo.procmond import _BATCH_BYTES, _batches, _cmdline, _text  # noqa: E402
from eventbus.v1 import payloads_pb2  # noqa: E402

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the test drives the demo with POSIX signals"
)

DEADLINE = 90.0
_PACKAGE_ROOT = str(Path(eventbus.__file__).resolve().parent.parent)

LISTENING = re.compile(r"^\[broker\] eventbus broker listening on ")
START_FROM_PROCMOND = re.compile(
    r"^\[agent\] #\d+ events\.process\.lifecycle\s+START pid=\d+ .*\[from procmond pid \d+\]"
)
HEARTBEAT = re.compile(r"^\[agent\] #\d+ control\.health\.heartbeat\s+heartbeat ")
AGENT_EVENT = re.compile(r"^\[agent\] #\d+ ")
CHILD = re.compile(r"^\[demo\] (broker|agent|procmond) pid (\d+): ")
DEMO_ACTIVITY = re.compile(r"^\[procmond\] demo activity: started pid (\d+)")


class _Demo:
    """The demo process and its output lines, read by a thread so the pipe never blocks."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("EVENTBUS_ADDRESS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventbus.demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _pump(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str]) -> str:
        """The first line (from now on) matching ``pattern``; fails on EOF or the deadline."""
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern.pattern!r} in {DEADLINE:g} s\n{self}")
            if line is None:
                pytest.fail(f"the demo ended before a line matching {pattern.pattern!r}\n{self}")
            if pattern.search(line):
                return line

    def wait(self) -> int:
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not exit within {DEADLINE:g} s\n{self}")
        self._reader.join(DEADLINE)
        return code

    def pids(self) -> dict[str, int]:
        """The pids of everything the demo started: its three programs, procmond's children."""
        found: dict[str, int] = {}
        for line in self.lines:
            if match := CHILD.search(line):
                found[match.group(1)] = int(match.group(2))
            elif match := DEMO_ACTIVITY.search(line):
                found[f"demo activity {match.group(1)}"] = int(match.group(1))
        return found

    def stop(self) -> None:
        """Whatever happened, leave nothing behind (SIGTERM: the demo stops its children)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.pids().values():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if "eventbus" in " ".join(proc.cmdline()):  # ours, not a reused pid
                    proc.kill()

    def __str__(self) -> str:
        return "--- demo output ---\n" + "\n".join(self.lines)


@pytest.fixture
def address() -> Iterator[str]:
    # AF_UNIX paths are short (about 100 bytes): a short directory right under /tmp.
    directory = tempfile.mkdtemp(prefix="eb-", dir="/tmp")
    try:
        yield os.path.join(directory, "bus.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _assert_all_gone(demo: _Demo) -> None:
    pids = demo.pids()
    assert {"broker", "agent", "procmond"} <= pids.keys(), demo
    left = {name: pid for name, pid in pids.items() if _running(pid)}
    assert not left, f"still running after the demo exited: {left}\n{demo}"


def test_demo_shows_live_events_and_stops_after_duration(address: str) -> None:
    demo = _Demo("--duration", "4", "--address", address)
    try:
        code = demo.wait()
        output = "\n".join(demo.lines)
        assert code == 0, demo
        assert any(LISTENING.search(line) for line in demo.lines), demo
        assert any(START_FROM_PROCMOND.search(line) for line in demo.lines), demo
        assert any(HEARTBEAT.search(line) for line in demo.lines), demo
        assert "[demo] stopped" in output, demo
        _assert_all_gone(demo)
    finally:
        demo.stop()


def test_sigint_stops_every_process_in_order(address: str) -> None:
    demo = _Demo("--address", address)
    try:
        demo.wait_for(AGENT_EVENT)
        demo.proc.send_signal(signal.SIGINT)
        code = demo.wait()
        assert code == 0, demo
        exits = [
            line for line in demo.lines if re.search(r"^\[demo\] \w+ exited with status", line)
        ]
        assert exits == [
            "[demo] procmond exited with status 0",
            "[demo] agent exited with status 0",
            "[demo] broker exited with status 0",
        ], demo
        _assert_all_gone(demo)
    finally:
        demo.stop()


def test_an_address_in_use_is_reported(address: str) -> None:
    first = _Demo("--address", address)
    try:
        first.wait_for(AGENT_EVENT)
        second = _Demo("--address", address, "--duration", "1")
        try:
            assert second.wait() == 1, second
            assert any("already listening on" in line for line in second.lines), second
            assert "broker" in second.pids(), second
            assert not _running(second.pids()["broker"]), second
        finally:
            second.stop()
        assert first.proc.poll() is None, first
    finally:
        first.stop()


def test_procmond_splits_a_large_enumeration_into_batches_that_fit_a_frame() -> None:
    events = [
        payloads_pb2.ProcessEvent(pid=pid, name="x" * 100, cmdline=["y" * 1000])
        for pid in range(1, 1001)
    ]
    batches = list(_batches(events, "b", 7))
    assert len(batches) > 1
    assert [b.sequence for b in batches] == list(range(7, 7 + len(batches)))
    assert all(b.batch_id == "b" for b in batches)
    assert all(b.ByteSize() <= _BATCH_BYTES for b in batches)
    assert [e.pid for b in batches for e in b.events] == list(range(1, 1001))


def test_procmond_publishes_names_and_arguments_that_are_not_utf8() -> None:
    escaped = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert _text(escaped) == "caf\\xe9"
    assert _text("lone \ud800") == "lone \\ud800"
    assert _text("déjà vu") == "déjà vu"
    event = payloads_pb2.ProcessEvent(name=_text(escaped), cmdline=_cmdline([escaped, "a" * 9000]))
    event.SerializeToString()
    assert len("".join(event.cmdline)) < 4200
