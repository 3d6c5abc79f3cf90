"""``python -m eventbus.demo.procmond``: a small process collector for the demo.

Connects as the principal ``procmond`` and

- publishes the processes running at start as ``ProcessBatch`` on ``events.process.batch``;
- polls the machine's processes every ``--interval`` seconds (psutil) and publishes a
  ``ProcessEvent`` on ``events.process.lifecycle`` for each process that started (START)
  or exited (STOP) since the last poll;
- publishes a ``Heartbeat`` on ``control.health.heartbeat`` every two seconds;
- subscribes to ``control.collector.task.process`` and answers an ``enumerate`` task with
  a fresh ``ProcessBatch`` whose ``batch_id`` and correlation id are the task's id;
- so that a quiet machine shows something too, starts a short-lived child process every few
  seconds (``--demo-activity``): a Python that only sleeps. It is labelled "demo activity".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import psutil  # type: ignore[import-untyped]

from .. import topics
from ..client import Client, Subscription
from ..errors import ConnectionLost, EventBusError
from ..eventloop import run
from ..transport import default_address
from ..v1 import frames_pb2, payloads_pb2
from . import READY, connect_as, exit_with_parent, say, stop_on_signals

__all__ = ["main"]

PRINCIPAL = "procmond"
COLLECTOR_ID = "demo-procmond"
HEARTBEAT_INTERVAL = 2.0
# A frame is at most 1 MiB by default: a big enumeration goes out in several batches.
_BATCH_BYTES = 256 << 10
# Command lines can be huge (ARG_MAX is 2 MiB on Linux); the demo shows their start.
_CMDLINE_CHARS = 4096

_Kind = payloads_pb2.ProcessEventKind
# A process is the same one while its pid and start time are; a reused pid is a new process.
_Key = tuple[int, float]
_ATTRS = ["ppid", "name", "exe", "cmdline", "username"] + (
    ["uids"] if hasattr(psutil.Process, "uids") else []
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eventbus.demo.procmond",
        description="Demo process collector: publishes process starts, stops and heartbeats.",
    )
    parser.add_argument("--address", help=f"broker address (default: {default_address()})")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default: 1.0)"
    )
    parser.add_argument(
        "--demo-activity",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="start a short-lived child process this often, so there is always something "
        "to see (default: 3.0; 0 turns it off)",
    )
    parser.add_argument(
        "--parent-pid", type=int, help="stop when this process is no longer our parent"
    )
    return parser


def _text(value: str | None) -> str:
    """``value`` as valid UTF-8 text, which a protobuf string must be.

    psutil decodes names and arguments that are not UTF-8 with surrogate escapes; those
    bytes are shown as ``\\xNN`` instead.
    """
    if not value:
        return ""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _cmdline(args: list[str] | None) -> list[str]:
    if not args:
        return []
    kept: list[str] = []
    left = _CMDLINE_CHARS
    for arg in map(_text, args):
        if len(arg) > left:
            kept.append(arg[:left] + "...")
            break
        kept.append(arg)
        left -= len(arg)
    return kept


def _describe(proc: psutil.Process, key: _Key) -> payloads_pb2.ProcessEvent | None:
    """The START event of ``proc``, or None if it is already gone."""
    try:
        with proc.oneshot():
            info = proc.as_dict(attrs=_ATTRS, ad_value=None)
    except psutil.NoSuchProcess:
        return None
    event = payloads_pb2.ProcessEvent(
        kind=_Kind.PROCESS_EVENT_KIND_START,
        pid=proc.pid,
        ppid=info["ppid"] or 0,
        name=_text(info["name"]),
        exe=_text(info["exe"]),
        cmdline=_cmdline(info["cmdline"]),
        user=_text(info["username"]),
        start_time_ns=int(key[1] * 1e9),
        collector_id=COLLECTOR_ID,
        observed_ns=time.time_ns(),
    )
    uids = info.get("uids")
    if uids is not None:
        event.uid = uids.real
    return event


class _Processes:
    """What the last poll saw, and what changed since."""

    def __init__(self) -> None:
        self.known: dict[_Key, payloads_pb2.ProcessEvent] = {}
        #: Exit codes of our own children (demo activity), reaped by the event loop.
        self.exit_codes: dict[int, int] = {}

    def poll(self) -> tuple[list[payloads_pb2.ProcessEvent], list[payloads_pb2.ProcessEvent]]:
        """Enumerate the processes; return (started, stopped) since the previous poll.

        Blocking: psutil reads /proc (or asks the kernel) for every process. Run it in a
        worker thread.
        """
        current: dict[_Key, psutil.Process] = {}
        # A fresh Process per pid, not psutil.process_iter(): its cached objects keep the
        # start time they first read, so a reused pid would look like the same process.
        for pid in psutil.pids():
            try:
                proc = psutil.Process(pid)
            except psutil.Error:
                continue
            try:
                key = (pid, proc.create_time())
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                key = (pid, 0.0)
            current[key] = proc
        started: list[payloads_pb2.ProcessEvent] = []
        for key, proc in current.items():
            if key not in self.known:
                event = _describe(proc, key)
                if event is not None:
                    self.known[key] = event
                    started.append(event)
        stopped: list[payloads_pb2.ProcessEvent] = []
        now = time.time_ns()
        for key in [k for k in self.known if k not in current]:
            event = payloads_pb2.ProcessEvent()
            event.CopyFrom(self.known.pop(key))
            event.kind = _Kind.PROCESS_EVENT_KIND_STOP
            event.observed_ns = now
            code = self.exit_codes.pop(event.pid, None)
            if code is not None:
                event.exit_code = code
            stopped.append(event)
        return started, stopped


def _batches(
    events: list[payloads_pb2.ProcessEvent], batch_id: str, first_sequence: int
) -> Iterator[payloads_pb2.ProcessBatch]:
    """Split ``events`` into ProcessBatch messages that each fit comfortably in a frame."""
    sequence = first_sequence
    batch = payloads_pb2.ProcessBatch(
        batch_id=batch_id, sequence=sequence, collector_id=COLLECTOR_ID
    )
    size = 0
    for event in events:
        event_size = event.ByteSize() + 8
        if batch.events and size + event_size > _BATCH_BYTES:
            yield batch
            sequence += 1
            batch = payloads_pb2.ProcessBatch(
                batch_id=batch_id, sequence=sequence, collector_id=COLLECTOR_ID
            )
            size = 0
        batch.events.append(event)
        size += event_size
    yield batch


class _Procmond:
    def __init__(self, client: Client, args: argparse.Namespace, stop: asyncio.Event) -> None:
        self.client = client
        self.interval: float = args.interval
        self.activity_every: float = args.demo_activity
        self.stop = stop
        self.processes = _Processes()
        self.started_at = time.monotonic()
        self.batch_sequence = 0
        # One poll at a time: the periodic one and the one a task asks for.
        self._polling = asyncio.Lock()
        self._children: set[asyncio.subprocess.Process] = set()
        self._reapers: set[asyncio.Task[None]] = set()

    async def enumerate(self, batch_id: str, correlation_id: str = "") -> tuple[int, int]:
        """Poll, then publish every known process as ProcessBatch; return (processes, batches).

        The first poll publishes no START events: the batch is how procmond reports the
        processes that were already running.
        """
        await self.poll(publish=bool(self.processes.known))
        events = []
        for event in self.processes.known.values():
            copy = payloads_pb2.ProcessEvent()
            copy.CopyFrom(event)
            copy.kind = _Kind.PROCESS_EVENT_KIND_METADATA
            events.append(copy)
        correlation = (
            frames_pb2.CorrelationMetadata(correlation_id=correlation_id)
            if correlation_id
            else None
        )
        batches = 0
        for batch in _batches(events, batch_id, self.batch_sequence + 1):
            self.batch_sequence = batch.sequence
            await self.client.publish(topics.PROCESS_BATCH, batch, correlation=correlation)
            batches += 1
        return len(events), batches

    async def poll(self, *, publish: bool = True) -> None:
        async with self._polling:
            started, stopped = await asyncio.to_thread(self.processes.poll)
            if not publish:
                return
            for event in started + stopped:
                await self.client.publish(topics.PROCESS_LIFECYCLE, event)

    async def poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.poll()

    async def heartbeat_forever(self) -> None:
        sequence = 0
        while True:
            sequence += 1
            beat = payloads_pb2.Heartbeat(
                collector_id=COLLECTOR_ID,
                collector_kind="process",
                pid=os.getpid(),
                sequence=sequence,
                timestamp_ns=time.time_ns(),
                uptime_s=time.monotonic() - self.started_at,
            )
            await self.client.publish(topics.HEALTH_HEARTBEAT, beat)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def answer_tasks(self, tasks: Subscription) -> None:
        async for envelope in tasks:
            task = envelope.decode()
            assert isinstance(task, payloads_pb2.Task)
            who = envelope.publisher
            say(
                f"task {task.task_id} {task.task_type!r} from {who.principal} pid {who.pid} "
                f"on {envelope.topic}"
            )
            if task.task_type == "enumerate":
                count, batches = await self.enumerate(task.task_id, task.task_id)
                say(
                    f"task {task.task_id}: enumerated {count} processes, published "
                    f"{batches} ProcessBatch on {topics.PROCESS_BATCH}"
                )
            else:
                say(f"task {task.task_id}: unknown task type {task.task_type!r}, ignored")

    async def demo_activity_forever(self) -> None:
        # Lives for two polls, so both its START and its STOP are seen.
        lifetime = round(2 * self.interval + 0.2, 1)
        code = f"import time; time.sleep({lifetime})  # eventbus demo activity"
        while True:
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
            self._children.add(child)
            say(
                f"demo activity: started pid {child.pid} (a Python that sleeps {lifetime:g} s), "
                "so there is a process START and STOP to see"
            )
            reaper = asyncio.get_running_loop().create_task(self._reap(child))
            self._reapers.add(reaper)
            reaper.add_done_callback(self._reapers.discard)
            await asyncio.sleep(self.activity_every)

    async def _reap(self, child: asyncio.subprocess.Process) -> None:
        code = await child.wait()
        self._children.discard(child)
        self.processes.exit_codes[child.pid] = code

    async def stop_children(self) -> None:
        for child in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            with contextlib.suppress(Exception):
                await child.wait()
        self._children.clear()


async def _run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    connected = await connect_as(PRINCIPAL, "procmond", args.address)
    if connected is None:
        return 1
    client, address = connected
    procmond = _Procmond(client, args, stop)
    jobs: list[asyncio.Task[object]] = []
    code = 0
    try:
        tasks = await client.subscribe(topics.TASK_PROCESS)
        count, batches = await procmond.enumerate("initial")
        say(
            f"{READY} connected to {address} as {client.principal!r} (pid {os.getpid()}); "
            f"published the {count} running processes in {batches} ProcessBatch on "
            f"{topics.PROCESS_BATCH}; polling every {args.interval:g} s"
        )
        loop = asyncio.get_running_loop()
        coros: list[Coroutine[Any, Any, object]] = [
            procmond.poll_forever(),
            procmond.heartbeat_forever(),
            procmond.answer_tasks(tasks),
            stop.wait(),
            client.wait_closed(),
        ]
        if args.demo_activity > 0:
            coros.append(procmond.demo_activity_forever())
        if args.parent_pid is not None:
            coros.append(exit_with_parent(args.parent_pid, stop, "procmond"))
        jobs = [loop.create_task(c) for c in coros]
        done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            failed = next(iter(done))
            reason = failed.exception() if not failed.cancelled() else None
            say(f"procmond: stopping: {reason or 'the connection to the broker ended'}")
            code = 1
    except (ConnectionLost, EventBusError) as exc:
        say(f"procmond: stopping: {exc}")
        code = 1
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        await procmond.stop_children()
        await client.close()
    if code == 0:
        say("procmond: stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.interval <= 0:
        _parser().error("--interval must be positive")
    try:
        return run(_run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
