"""One process of a chaos run: a collector that publishes, or an agent that subscribes.

Run by path (it imports nothing from the ``chaos`` package, so a child needs only
``eventbus`` on its path)::

    python chaos/peer.py publish --address A --principal procmond --topic T [--topic T...]
        [--rate N] [--task FILTER@GROUP]
    python chaos/peer.py subscribe --address A --principal agent --filter F [--filter F...]

Both print JSON lines on stdout and take commands on stdin, one per line; EOF on stdin (the
parent died) ends them.

A publisher prints ``ready`` (pid, client instance id), then publishes on its topics in
turn, ``--rate`` events a second, unconfirmed, and prints ``progress`` (events handed to the
client per topic) twice a second. Its n-th event on a topic has client sequence n and
payload ``b"n"``: this process numbers its publishes the way its client does, so what it
says it sent is checked by every subscriber. Commands:

- ``finish {"TOPIC": SUBSCRIBERS, ...}``: stop publishing, then publish confirmed markers on
  each topic until one reaches exactly SUBSCRIBERS connections -> ``finished`` with the last
  sequence per topic. After that every gap in its streams is visible to every subscriber.
- ``stop``: close and exit 0.

A subscriber prints ``ready``, ``stream`` the first time an event of a (publisher instance,
topic) stream arrives, and ``state`` whenever its connection goes down or comes back with
its subscriptions registered again. It checks on the fly that each stream's sequences
strictly increase and that each payload names its sequence. Commands:

- ``sync``: once the connection is up and a ping round trip succeeds -> ``synced``.
- ``report``: make sure everything the broker wrote to this connection was taken, then
  -> ``report`` with per-stream counts, violations and the client's counters.
- ``stop``: close and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

import eventbus
from eventbus.eventloop import run
from eventbus.v1 import frames_pb2

# A broker being restarted refuses connections for a moment: keep trying this long.
CONNECT_DEADLINE = 30.0
# Violations kept in a report; the count covers them all.
MAX_VIOLATIONS = 20


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def connect(args: argparse.Namespace, **options: Any) -> eventbus.Client:
    """The first connection (the client reconnects by itself afterwards)."""
    deadline = time.monotonic() + CONNECT_DEADLINE
    while True:
        try:
            return await eventbus.connect(args.address, principal=args.principal, **options)
        except (eventbus.ConnectionLost, eventbus.Timeout, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def sync(client: eventbus.Client) -> None:
    """Say ``synced`` once a round trip to a live broker succeeds: the connection is up
    and its subscriptions are registered on that broker."""
    deadline = time.monotonic() + CONNECT_DEADLINE
    while True:
        try:
            await client.wait_connected(timeout=CONNECT_DEADLINE)
            await client.ping(timeout=CONNECT_DEADLINE)
        except (eventbus.ConnectionLost, eventbus.Timeout):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
            continue
        emit("synced", reconnects=client.reconnects)
        return


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of stdin, read by a thread (None at EOF)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, daemon=True).start()
    return queue


class Publisher:
    def __init__(self, client: eventbus.Client, args: argparse.Namespace) -> None:
        self.client = client
        self.topics: list[str] = args.topic
        self.rate: int = args.rate
        # Mirrors the client's numbering: one per publish call on the topic.
        self.sent = dict.fromkeys(self.topics, 0)
        self.stopping = asyncio.Event()
        #: Publishes that raised ConnectionLost (the connection broke during the write).
        self.interrupted = 0

    async def publish(self, topic: str, *, confirm: bool = False) -> int | None:
        sequence = self.sent[topic] = self.sent[topic] + 1
        return await self.client.publish(topic, b"%d" % sequence, confirm=confirm)

    async def stream(self) -> None:
        """Publish round-robin at the rate asked, in ticks of 10 ms."""
        per_tick = max(1, self.rate // 100)
        turn = 0
        next_progress = time.monotonic()
        try:
            while not self.stopping.is_set():
                for _ in range(per_tick):
                    topic = self.topics[turn % len(self.topics)]
                    turn += 1
                    try:
                        await self.publish(topic)
                    except eventbus.ConnectionLost:
                        # The connection broke under this publish: it is numbered, and
                        # whether it left is for the subscribers' gap count to tell.
                        # Raises again when the client has given up for good.
                        self.interrupted += 1
                        await self.client.wait_connected(timeout=CONNECT_DEADLINE)
                if time.monotonic() >= next_progress:
                    emit("progress", sent=self.sent, interrupted=self.interrupted)
                    next_progress += 0.5
                await asyncio.sleep(0.01)
        except Exception as exc:
            # The client gave up (it reconnects for ever otherwise): the run must hear of it.
            emit("failed", error=type(exc).__name__, message=str(exc))
            raise

    async def finish(self, expected: dict[str, int]) -> None:
        markers = 0
        failures: list[str] = []
        deadline = time.monotonic() + CONNECT_DEADLINE
        for topic in self.topics:
            want = expected.get(topic, 0)
            while True:
                delivered = await self.publish(topic, confirm=True)
                markers += 1
                if delivered == want:
                    break
                if time.monotonic() > deadline:
                    failures.append(
                        f"{topic}: a marker reached {delivered} connections, not {want}"
                    )
                    break
                # Subscribers still re-registering after a restart: try again shortly.
                await asyncio.sleep(0.01)
        emit(
            "finished",
            last=self.sent,
            markers=markers,
            unsent=self.client.unsent,
            interrupted=self.interrupted,
            failures=failures,
        )


class Subscriber:
    def __init__(self, client: eventbus.Client) -> None:
        self.client = client
        self.subs: list[eventbus.Subscription] = []
        self.consumers: list[asyncio.Task[None]] = []
        # (instance id, topic) -> [first sequence, last sequence, events received]
        self.streams: dict[tuple[int, str], list[int]] = {}
        self.lost_by_instance: dict[int, int] = {}
        self.violations: list[str] = []
        self.violation_count = 0
        self.failures: list[str] = []

    def on_lost(self, publisher: frames_pb2.ProcessIdentity, count: int) -> None:
        key = publisher.instance_id
        self.lost_by_instance[key] = self.lost_by_instance.get(key, 0) + count

    def violation(self, text: str) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(text)

    async def subscribe(self, topic_filter: str) -> None:
        sub = await self.client.subscribe(topic_filter)
        self.subs.append(sub)
        self.consumers.append(asyncio.get_running_loop().create_task(self.consume(sub)))

    async def consume(self, sub: eventbus.Subscription) -> None:
        streams = self.streams
        try:
            async for envelope in sub:
                # Checked in the same step that took it off the queue: once the queues are
                # empty, every event taken is counted.
                publisher = envelope.publisher
                topic = envelope.topic
                key = (publisher.instance_id, topic)
                sequence = publisher.sequence
                state = streams.get(key)
                if state is None:
                    streams[key] = [sequence, sequence, 1]
                    emit("stream", instance_id=key[0], topic=topic, first=sequence)
                else:
                    if sequence <= state[1]:
                        kind = "duplicate" if sequence == state[1] else "reordered"
                        self.violation(
                            f"{kind}: {topic} of instance {key[0]:#x} (pid {publisher.pid}): "
                            f"sequence {sequence} after {state[1]}"
                        )
                    else:
                        state[1] = sequence
                    state[2] += 1
                if envelope.payload != b"%d" % sequence:
                    self.violation(
                        f"payload {envelope.payload[:20]!r} of {topic} does not match "
                        f"its sequence {sequence} (instance {key[0]:#x})"
                    )
        except Exception as exc:
            self.failures.append(f"{sub.filter}: {exc!r}")

    async def watch(self) -> None:
        """Say when the connection goes down and when it is back with subscriptions."""
        client = self.client
        last = (True, 0)
        while True:
            now = (client.connected, client.reconnects)
            if now != last:
                emit("state", connected=now[0], reconnects=now[1])
                last = now
            await asyncio.sleep(0.01)

    async def report(self) -> None:
        # The broker answers the ping after everything it wrote here before.
        await self.client.ping(timeout=CONNECT_DEADLINE)
        while any(sub.pending for sub in self.subs):
            await asyncio.sleep(0)
        client = self.client
        emit(
            "report",
            received=sum(state[2] for state in self.streams.values()),
            dropped=client.dropped,
            lost=client.lost,
            lost_by_instance={str(k): v for k, v in self.lost_by_instance.items()},
            streams=[
                {"instance_id": key[0], "topic": key[1], "first": s[0], "last": s[1], "count": s[2]}
                for key, s in self.streams.items()
            ],
            violations=self.violations,
            violation_count=self.violation_count,
            failures=self.failures,
            reconnects=client.reconnects,
        )


async def main(args: argparse.Namespace) -> int:
    subscriber: Subscriber | None = None
    background: list[asyncio.Task[None]] = []
    if args.role == "subscribe":
        holder: list[Subscriber] = []
        client = await connect(
            args, on_lost=lambda publisher, count: holder[0].on_lost(publisher, count)
        )
        subscriber = Subscriber(client)
        holder.append(subscriber)
        for topic_filter in args.filter:
            await subscriber.subscribe(topic_filter)
        background.append(asyncio.get_running_loop().create_task(subscriber.watch()))
        publisher = None
    else:
        client = await connect(args)
        if args.task:
            # Held only so the broker has a subscription of this process to remove.
            task_filter, _, group = args.task.partition("@")
            await client.subscribe(task_filter, group=group or None)
        publisher = Publisher(client, args)
        background.append(asyncio.get_running_loop().create_task(publisher.stream()))
    emit("ready", pid=os.getpid(), instance_id=client.instance_id, backend=eventbus.BACKEND)
    commands = stdin_lines(asyncio.get_running_loop())
    try:
        while True:
            line = await commands.get()
            if line is None or line.strip() == "stop":
                break
            op, _, rest = line.strip().partition(" ")
            if op == "finish" and publisher is not None:
                publisher.stopping.set()
                await background[0]
                await publisher.finish(json.loads(rest))
            elif op == "report" and subscriber is not None:
                await subscriber.report()
            elif op == "sync":
                await sync(client)
            else:
                emit("error", message=f"unknown command {line.strip()!r}")
    finally:
        for task in background:
            task.cancel()
        await client.close()
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["publish", "subscribe"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--principal", required=True)
    parser.add_argument("--topic", action="append", default=[], help="publish: repeatable")
    parser.add_argument("--rate", type=int, default=200, help="publish: events a second")
    parser.add_argument("--task", metavar="FILTER@GROUP", help="publish: a subscription to hold")
    parser.add_argument("--filter", action="append", default=[], help="subscribe: repeatable")
    args = parser.parse_args(argv)
    if args.role == "publish" and not args.topic:
        parser.error("publish needs at least one --topic")
    if args.role == "subscribe" and not args.filter:
        parser.error("subscribe needs at least one --filter")
    return args


if __name__ == "__main__":
    sys.exit(run(main(parse())))
