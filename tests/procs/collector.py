"""A stand-in collector process (procmond, netmond, ...) driven over stdin/stdout.

Run by the integration tests as a separate OS process::

    python tests/procs/collector.py --address SOCK --principal procmond \
        --subscribe control.collector.task.process [--subscribe F@GROUP] [--ack-topic T]

It connects as the principal, subscribes, and prints one JSON object per line on stdout:

- ``{"event": "ready", "pid": ..., "connection_id": ..., "backend": ..., ...}`` once
  connected and subscribed, or ``{"event": "refused", "error": ..., "message": ...}`` (exit 3)
  when the broker does not admit it.
- ``{"event": "received", ...}`` for every event, when started with ``--echo``.

Then it reads commands from stdin, one per line, and answers each with one line:

- ``publish COUNT TOPIC [TOPIC...]``: publish COUNT events round-robin over the topics,
  with the next COUNT sequence numbers of this collector (0, 1, ... over all its publish
  commands; in the payload and in the correlation metadata), then make sure the broker has
  handled them all (a ping round trip) -> ``published``.
- ``try-publish TOPIC`` / ``try-subscribe FILTER`` / ``try-list-all``: attempt the operation
  -> ``result`` with ``ok`` and, on failure, the exception type and message.
- ``wait-disconnected``: wait until the client has noticed that its connection is gone
  -> ``disconnected``.
- ``reconnected N``: wait until the client has reconnected N times in all and registered
  its subscriptions again -> ``reconnected`` with the new connection id.
- ``unsubscribe FILTER`` -> ``unsubscribed``.
- ``list`` -> ``list`` with this connection's subscriptions as the broker reports them.
- ``wait-total COUNT``: wait until COUNT events were received or reported lost by the
  broker (``Dropped``) -> ``total``.
- ``report``: as ``stop`` below, but keep running.
- ``stop``: make sure every event the broker wrote to this connection has been taken, then
  report everything received per subscription, how many events the broker reported lost,
  and any consumer that failed -> ``report``;
  close and exit 0.

The client reconnects by itself (unless ``--no-reconnect``). When the connection ends for
good it prints ``report`` and ``closed`` (with the error) and exits 0.
EOF on stdin (the test process died) makes it exit as well.
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

from google.protobuf.message import DecodeError

import eventbus
from eventbus import topics
from eventbus.eventloop import run
from eventbus.v1 import frames_pb2, payloads_pb2

_LIFECYCLE_KIND = payloads_pb2.PROCESS_EVENT_KIND_START


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def payload_for(topic: str, name: str, seq: int, pad: int = 0) -> bytes:
    """The payload of event ``seq``: a ProcessEvent on process topics, JSON elsewhere.

    Both carry the sequence number, so a subscriber can check the payload against the
    correlation metadata the broker passed along; ``pad`` adds that many bytes of filler.
    """
    if topics.payload_type(topic) is payloads_pb2.ProcessEvent:
        event = payloads_pb2.ProcessEvent(
            kind=_LIFECYCLE_KIND,
            pid=os.getpid(),
            name="collector",
            collector_id=f"{name}:{seq}",
            observed_ns=time.time_ns(),
            cmdline=["x" * pad] if pad else [],
        )
        return event.SerializeToString()
    body = {"source": name, "seq": seq}
    if pad:
        body["pad"] = "x" * pad
    return json.dumps(body).encode()


def describe(envelope: eventbus.Envelope) -> dict[str, Any]:
    publisher = envelope.publisher
    record: dict[str, Any] = {
        "topic": envelope.topic,
        "pid": publisher.pid,
        "uid": publisher.uid,
        "principal": publisher.principal,
        "connection_id": publisher.connection_id,
        "seq": envelope.correlation.sequence if envelope.correlation is not None else None,
        "instance_id": publisher.instance_id,
        "sequence": publisher.sequence,
    }
    if topics.payload_type(envelope.topic) is payloads_pb2.Task:
        try:
            record["task_id"] = payloads_pb2.Task.FromString(envelope.payload).task_id
        except DecodeError:
            record["payload"] = envelope.payload.decode(errors="replace")
    return record


def error_fields(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc)}


class Collector:
    def __init__(self, client: eventbus.Client, args: argparse.Namespace) -> None:
        self.client = client
        self.args = args
        self.name = args.name or f"{args.principal}[{os.getpid()}]"
        self.subs: dict[str, eventbus.Subscription] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.consumers: list[asyncio.Task[None]] = []
        self.lost: BaseException | None = None
        self.failures: list[str] = []
        self.next_seq = 0

    async def subscribe(self, spec: str) -> None:
        topic_filter, _, group = spec.partition("@")
        sub = await self.client.subscribe(topic_filter, group=group or None)
        self.subs[spec] = sub
        self.received[spec] = []
        self.consumers.append(asyncio.get_running_loop().create_task(self.consume(spec, sub)))

    async def consume(self, spec: str, sub: eventbus.Subscription) -> None:
        records = self.received[spec]
        try:
            async for envelope in sub:
                # Recorded in the same step that took it off the queue: once every queue
                # is empty, every taken event is in the report.
                record = describe(envelope)
                records.append(record)
                if self.args.echo:
                    emit("received", filter=spec, **record)
                if self.args.ack_topic and "task_id" in record:
                    status = payloads_pb2.HealthStatus(
                        component=self.name,
                        message=f"ack {record['task_id']}",
                        details={"task_id": record["task_id"], "pid": str(os.getpid())},
                    )
                    await self.client.publish(self.args.ack_topic, status)
        except eventbus.EventBusError as exc:
            self.lost = exc
        except Exception as exc:
            # Reported with the results, so a broken consumer never passes for "nothing came".
            self.failures.append(f"{spec}: {exc!r}")

    async def settle(self) -> None:
        """Wait until every event already written to this connection is in the report.

        The broker answers a ping after everything it wrote here before, and the client
        queues each event before it handles the pong; then the consumers empty the queues.
        """
        await self.client.ping()
        while any(sub.pending for sub in self.subs.values()):
            await asyncio.sleep(0)

    async def command(self, line: str) -> bool:
        """Run one command line; False when the collector should stop."""
        words = line.split()
        if not words:
            return True
        op, rest = words[0], words[1:]
        if op == "publish":
            count, names = int(rest[0]), rest[1:]
            for number in range(count):
                seq = self.next_seq
                self.next_seq += 1
                topic = names[number % len(names)]
                correlation = frames_pb2.CorrelationMetadata(correlation_id=self.name, sequence=seq)
                payload = payload_for(topic, self.name, seq, self.args.pad)
                await self.client.publish(topic, payload, correlation=correlation)
            # Written to the connection, or kept for the next one while reconnecting.
            emit("sent", count=count, connected=self.client.connected)
            await self.client.ping()
            emit("published", count=count)
        elif op in ("try-publish", "try-subscribe", "try-list-all"):
            try:
                if op == "try-publish":
                    await self.client.publish(rest[0], b"forbidden?")
                elif op == "try-subscribe":
                    await self.subscribe(rest[0])
                else:
                    await self.client.list_subscriptions(all_clients=True)
            except eventbus.EventBusError as exc:
                emit("result", op=op, arg=rest[0] if rest else None, ok=False, **error_fields(exc))
            else:
                emit("result", op=op, arg=rest[0] if rest else None, ok=True)
        elif op == "wait-disconnected":
            while self.client.connected:
                await asyncio.sleep(0.01)
            emit("disconnected")
        elif op == "reconnected":
            # Until the N-th reconnection is complete: subscriptions registered again.
            while self.client.reconnects < int(rest[0]) or not self.client.connected:
                await asyncio.sleep(0.01)
            emit(
                "reconnected",
                reconnects=self.client.reconnects,
                connection_id=self.client.connection_id,
            )
        elif op == "unsubscribe":
            await self.subs.pop(rest[0]).unsubscribe()
            emit("unsubscribed", filter=rest[0])
        elif op == "list":
            clients = await self.client.list_subscriptions()
            emit(
                "list",
                clients=[
                    {
                        "pid": info.identity.pid,
                        "principal": info.identity.principal,
                        "filters": [s.filter for s in info.subscriptions],
                    }
                    for info in clients
                ],
            )
        elif op == "wait-total":
            # Until every one of COUNT events has arrived, been reported dropped by the
            # broker, or been found lost in transit (a gap in its publisher's sequence).
            total = int(rest[0])
            client = self.client
            while client.dropped + client.lost + sum(map(len, self.received.values())) < total:
                await client.ping()
                await asyncio.sleep(0.01)
            received = sum(map(len, self.received.values()))
            emit("total", received=received, dropped=client.dropped, lost=client.lost)
        elif op in ("report", "stop"):
            await self.settle()
            emit(
                "report",
                received=self.received,
                failures=self.failures,
                dropped=self.client.dropped,
                lost=self.client.lost,
            )
            return op == "report"
        else:
            emit("result", op=op, ok=False, error="UnknownCommand", message=line)
        return True


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of stdin, read by a thread (portable; stdin may be a pipe or a console)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, daemon=True).start()
    return queue


async def main(args: argparse.Namespace) -> int:
    try:
        client = await eventbus.connect(
            args.address,
            principal=args.principal,
            client_name=args.client_name,
            reconnect=not args.no_reconnect,
        )
    except eventbus.EventBusError as exc:
        emit("refused", **error_fields(exc))
        return 3
    collector = Collector(client, args)
    for spec in args.subscribe:
        await collector.subscribe(spec)
    identity = client.identity
    emit(
        "ready",
        pid=os.getpid(),
        principal=client.principal,
        connection_id=client.connection_id,
        identity={"pid": identity.pid, "uid": identity.uid, "principal": identity.principal},
        backend=eventbus.BACKEND,
        subscriptions=list(collector.subs),
    )
    commands = stdin_lines(asyncio.get_running_loop())
    closed = asyncio.ensure_future(client.wait_closed())
    while True:
        next_line = asyncio.ensure_future(commands.get())
        await asyncio.wait({next_line, closed}, return_when=asyncio.FIRST_COMPLETED)
        if closed.done():
            next_line.cancel()
            # Take whatever was queued before the connection ended.
            await asyncio.gather(*collector.consumers, return_exceptions=True)
            emit(
                "report",
                received=collector.received,
                failures=collector.failures,
                dropped=client.dropped,
                lost=client.lost,
            )
            error = closed.result() or collector.lost
            emit("closed", **(error_fields(error) if error is not None else {"error": None}))
            return 0
        line = next_line.result()
        if line is None:
            await client.close()
            return 0
        try:
            keep_going = await collector.command(line)
        except eventbus.ConnectionLost as exc:
            # Lost while reconnecting, or for good (then reported by the branch above).
            emit("result", op=line.split()[0], ok=False, **error_fields(exc))
            continue
        if not keep_going:
            await client.close()
            return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--principal", required=True)
    parser.add_argument("--name", help="collector id used in payloads")
    parser.add_argument("--client-name", help="client name claimed in Hello")
    parser.add_argument(
        "--subscribe", action="append", default=[], metavar="FILTER[@GROUP]", help="repeatable"
    )
    parser.add_argument("--ack-topic", help="publish a HealthStatus here for each task received")
    parser.add_argument("--echo", action="store_true", help="print each event as it arrives")
    parser.add_argument("--pad", type=int, default=0, help="filler bytes in each payload")
    parser.add_argument(
        "--no-reconnect", action="store_true", help="end when the connection is lost"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(main(parse())))
