"""``python -m eventbus.demo.agent``: the demo's agent, printing every event it receives.

Connects as the principal ``agent``, subscribes to

- ``events.process.+``: what procmond publishes (ProcessEvent, ProcessBatch);
- ``control.health.heartbeat``: collectors' Heartbeat;
- ``$SYS.client.#``: the broker's ClientPresence when a client connects or disconnects;

prints one line per event with a running count, decoding each payload by its topic, and
every ``--task-interval`` seconds sends procmond an ``enumerate`` Task on
``control.collector.task.process`` (a confirmed publish: the broker says how many
subscribers it reached). procmond answers with a ProcessBatch carrying the task's id.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from google.protobuf.message import Message

from .. import topics
from ..client import Client, Envelope, Subscription
from ..errors import EventBusError
from ..eventloop import run
from ..transport import default_address
from ..v1 import frames_pb2, payloads_pb2
from . import READY, connect_as, exit_with_parent, say, stop_on_signals

__all__ = ["FILTERS", "describe", "main"]

PRINCIPAL = "agent"
#: What the agent subscribes to.
FILTERS = ("events.process.+", topics.HEALTH_HEARTBEAT, "$SYS.client.#")
# The longest cmdline shown on one line.
_CMDLINE_CHARS = 72

_Kind = payloads_pb2.ProcessEventKind


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eventbus.demo.agent",
        description="Demo agent: prints process events, heartbeats and presence as they come.",
    )
    parser.add_argument("--address", help=f"broker address (default: {default_address()})")
    parser.add_argument(
        "--task-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="send procmond an 'enumerate' task this often (default: 5.0; 0 turns it off)",
    )
    parser.add_argument(
        "--parent-pid", type=int, help="stop when this process is no longer our parent"
    )
    return parser


def _kind(kind: int) -> str:
    return _Kind.Name(kind).removeprefix("PROCESS_EVENT_KIND_")


def _command(event: payloads_pb2.ProcessEvent) -> str:
    if not event.cmdline:
        return ""
    # The program's name rather than its full path, to leave room for its arguments.
    line = " ".join([os.path.basename(event.cmdline[0]), *event.cmdline[1:]])
    if len(line) > _CMDLINE_CHARS:
        line = line[: _CMDLINE_CHARS - 3] + "..."
    return line


def _process(event: payloads_pb2.ProcessEvent, publisher: frames_pb2.ProcessIdentity) -> str:
    kind = _kind(event.kind)
    text = f"{kind} pid={event.pid} {event.name or '?'}"
    if event.kind == _Kind.PROCESS_EVENT_KIND_STOP:
        if event.HasField("exit_code"):
            text += f" exit={event.exit_code}"
        if event.start_time_ns and event.observed_ns > event.start_time_ns:
            text += f" (ran {(event.observed_ns - event.start_time_ns) / 1e9:.1f} s)"
    else:
        text += f" (ppid {event.ppid}, user {event.user or '?'})"
        command = _command(event)
        if command:
            text += f" {command!r}"
    if event.ppid and event.ppid == publisher.pid:
        text += " <- demo activity (procmond's own child)"
    return text


def _batch(batch: payloads_pb2.ProcessBatch, envelope: Envelope) -> str:
    text = f"BATCH {len(batch.events)} processes (batch {batch.batch_id!r} #{batch.sequence})"
    correlation = envelope.correlation
    if correlation is not None and correlation.correlation_id:
        text += f", the answer to task {correlation.correlation_id}"
    elif batch.batch_id == "initial":
        text += ", what was running when procmond started"
    return text


def _presence(envelope: Envelope) -> str:
    presence = frames_pb2.ClientPresence.FromString(envelope.payload)
    who = presence.identity
    name = f"{who.principal or '?'} pid={who.pid} uid={who.uid} connection={who.connection_id}"
    if envelope.topic == topics.SYS_CLIENT_CONNECTED:
        return f"client connected: {name} ({who.client_name})"
    return f"client disconnected: {name}, {presence.reason}"


def describe(envelope: Envelope) -> str:
    """One readable line for one event: the decoded payload and who published it."""
    who = envelope.publisher
    source = f"[from {who.principal or '?'} pid {who.pid}]"
    if envelope.topic.startswith("$SYS.client."):
        return _presence(envelope)
    if topics.payload_type(envelope.topic) is None:
        return f"{len(envelope.payload)} bytes (no schema registered) {source}"
    message: Message = envelope.decode()
    if isinstance(message, payloads_pb2.ProcessEvent):
        return f"{_process(message, who)} {source}"
    if isinstance(message, payloads_pb2.ProcessBatch):
        return f"{_batch(message, envelope)} {source}"
    if isinstance(message, payloads_pb2.Heartbeat):
        return (
            f"heartbeat {message.collector_id} ({message.collector_kind}) pid={message.pid} "
            f"#{message.sequence} up {message.uptime_s:.1f} s"
        )
    return f"{type(message).__name__} {source}"


class _Agent:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.received = 0
        self.by_topic: Counter[str] = Counter()

    async def show(self, sub: Subscription) -> None:
        async for envelope in sub:
            self.received += 1
            self.by_topic[envelope.topic] += 1
            try:
                text = describe(envelope)
            except EventBusError as exc:  # a payload that does not parse as its topic's type
                text = f"undecodable: {exc}"
            say(f"#{self.received} {envelope.topic}  {text}")

    async def send_tasks(self, every: float) -> None:
        number = 0
        while True:
            await asyncio.sleep(every)
            number += 1
            task = payloads_pb2.Task(
                task_id=f"enumerate-{number}",
                collector_kind="process",
                task_type="enumerate",
                deadline_ns=time.time_ns() + 10 * 1_000_000_000,
            )
            reached = await self.client.publish(topics.TASK_PROCESS, task, confirm=True)
            outcome = f"reached {reached} subscriber(s)" if reached else "no collector is listening"
            say(f"sent task {task.task_id} on {topics.TASK_PROCESS}: {outcome}")


async def _run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    connected = await connect_as(PRINCIPAL, "agent", args.address)
    if connected is None:
        return 1
    client, address = connected
    agent = _Agent(client)
    jobs: list[asyncio.Task[object]] = []
    code = 0
    try:
        subs = [await client.subscribe(f) for f in FILTERS]
        say(
            f"{READY} connected to {address} as {client.principal!r} (pid {os.getpid()}); "
            f"subscribed to {', '.join(FILTERS)}"
        )
        loop = asyncio.get_running_loop()
        coros: list[Coroutine[Any, Any, object]] = [agent.show(sub) for sub in subs]
        coros += [stop.wait(), client.wait_closed()]
        if args.task_interval > 0:
            coros.append(agent.send_tasks(args.task_interval))
        if args.parent_pid is not None:
            coros.append(exit_with_parent(args.parent_pid, stop, "agent"))
        jobs = [loop.create_task(c) for c in coros]
        done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            failed = next(iter(done))
            reason = failed.exception() if not failed.cancelled() else None
            say(f"agent: stopping: {reason or 'the connection to the broker ended'}")
            code = 1
    except EventBusError as exc:
        say(f"agent: stopping: {exc}")
        code = 1
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        await client.close()
    counts = ", ".join(f"{n} {topic}" for topic, n in sorted(agent.by_topic.items()))
    say(f"agent: received {agent.received} events" + (f" ({counts})" if counts else ""))
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(_run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
