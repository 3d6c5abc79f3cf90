"""One process of the end-to-end benchmark: a publisher or a subscriber.

Run by ``bench/e2e.py``, never by hand. Roles:

``bus-pub`` / ``bus-sub``
    The real client (``eventbus.connect``, ``publish``, ``subscribe``), as procmond and as
    the agent of the default policy.
``raw-pub`` / ``raw-sub``
    The baseline: plain asyncio streams to ``e2e_relay.py``, length-prefixed frames, no
    protobuf, no ACL.

Talk with the parent on stdin/stdout, one line each: the worker prints ``READY`` once it is
connected (and subscribed), a publisher waits for ``GO`` on stdin, a subscriber stops early on
``STOP``; the last line printed is a JSON result. Every payload starts with the publisher's
``time.monotonic_ns()`` at the moment it hands the message to the client (the clock is
system-wide on Linux), its id and the sequence number; the rest is padding up to ``--size``.
Subscribers write their latencies (ns, native ``int64``) to ``--latency-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import threading
import time
from array import array
from collections.abc import Callable, Coroutine
from typing import Any

HEADER = struct.Struct("<QII")  # monotonic_ns, publisher id, sequence
LENGTH = struct.Struct("<I")
PUB_TOPIC = "events.process.lifecycle.host-0.collector-{id}"
SUB_FILTER = "events.process.#"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2e_worker.py")
    parser.add_argument("role", choices=["bus-pub", "bus-sub", "raw-pub", "raw-sub"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--id", type=int, default=0)
    parser.add_argument("--count", type=int, default=0, help="messages to publish")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0: unpaced")
    parser.add_argument("--confirm", action="store_true", help="publish with confirm=True")
    parser.add_argument(
        "--window",
        type=int,
        default=1,
        help="confirmed publishes in flight at once (asyncio.gather of this many)",
    )
    parser.add_argument("--expect", type=int, default=0, help="messages a subscriber waits for")
    parser.add_argument("--latency-file")
    return parser


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _watch_stdin(loop: asyncio.AbstractEventLoop, on_line: Callable[[str], None]) -> None:
    """Hand each line the parent writes to ``on_line`` in the loop (from a daemon thread)."""

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(on_line, line.strip())
        loop.call_soon_threadsafe(on_line, "EOF")

    threading.Thread(target=read, daemon=True).start()


async def _wait_go() -> None:
    loop = asyncio.get_running_loop()
    go = loop.create_future()

    def on_line(line: str) -> None:
        if not go.done():
            if line == "GO":
                go.set_result(None)
            elif line == "EOF":
                go.set_exception(SystemExit("parent went away before GO"))

    _watch_stdin(loop, on_line)
    await go


def _payload(size: int) -> bytearray:
    return bytearray(max(size, HEADER.size))


class _Pacer:
    """Keeps a publisher on ``rate`` messages/s from ``start`` (no catching up in bursts of
    more than what one timer tick of the loop lets through)."""

    def __init__(self, rate: float) -> None:
        self.interval_ns = int(1e9 / rate) if rate > 0 else 0
        self.start = time.monotonic_ns()

    async def wait(self, index: int) -> None:
        if not self.interval_ns:
            return
        delay = self.start + index * self.interval_ns - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)


# --- the bus ----------------------------------------------------------------------------------


async def bus_pub(args: argparse.Namespace) -> dict[str, Any]:
    import eventbus

    client = await eventbus.connect(args.address, principal="procmond", client_name="bench-pub")
    topic = PUB_TOPIC.format(id=args.id)
    payload = _payload(args.size)
    pack_into, ident = HEADER.pack_into, args.id
    publish, monotonic_ns = client.publish, time.monotonic_ns
    _emit(f"READY {eventbus.BACKEND}")
    await _wait_go()
    pacer = _Pacer(args.rate)
    cpu = time.process_time()
    t_start = monotonic_ns()
    delivered = 0
    if args.confirm and args.window > 1:
        delivered = await _confirm_window(publish, topic, args)
    else:
        for seq in range(args.count):
            await pacer.wait(seq)
            pack_into(payload, 0, monotonic_ns(), ident, seq)
            if args.confirm:
                delivered += await publish(topic, payload, confirm=True) or 0
            else:
                await publish(topic, payload)
    t_end = monotonic_ns()
    cpu = time.process_time() - cpu
    await client.close()
    result = {"sent": args.count, "t_start": t_start, "t_end": t_end, "cpu_s": cpu}
    if args.confirm:
        result["acked_deliveries"] = delivered
    return result


async def _confirm_window(
    publish: Callable[..., Coroutine[Any, Any, int | None]], topic: str, args: argparse.Namespace
) -> int:
    """``args.window`` concurrent confirmers, each publishing its share one confirmed event
    at a time: as many confirms in flight as confirmers, all the time (with a client that
    serialised them, the same as one at a time)."""
    padding = bytes(max(args.size, HEADER.size) - HEADER.size)
    pack, ident, monotonic_ns = HEADER.pack, args.id, time.monotonic_ns

    async def confirmer(first: int) -> int:
        delivered = 0
        for seq in range(first, args.count, args.window):
            payload = pack(monotonic_ns(), ident, seq) + padding
            delivered += await publish(topic, payload, confirm=True) or 0
        return delivered

    return sum(await asyncio.gather(*(confirmer(i) for i in range(args.window))))


async def bus_sub(args: argparse.Namespace) -> dict[str, Any]:
    import eventbus

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    latencies = array("q")
    state: dict[str, Any] = {"received": 0, "dropped": 0, "t_first": 0, "t_last": 0}
    expect = args.expect

    def on_dropped(count: int) -> None:
        state["dropped"] += count
        if state["received"] + state["dropped"] >= expect:
            done.set()

    client = await eventbus.connect(
        args.address, principal="agent", client_name="bench-sub", on_dropped=on_dropped
    )
    sub = await client.subscribe(SUB_FILTER)
    _watch_stdin(loop, lambda line: done.set() if line in ("STOP", "EOF") else None)
    _emit(f"READY {eventbus.BACKEND}")
    cpu = time.process_time()

    async def consume() -> None:
        unpack_from, monotonic_ns, record = HEADER.unpack_from, time.monotonic_ns, latencies.append
        received = 0
        async for envelope in sub:
            now = monotonic_ns()
            record(now - unpack_from(envelope.payload)[0])
            received += 1
            state["received"] = received
            if received == 1:
                state["t_first"] = now
            state["t_last"] = now
            if received + state["dropped"] >= expect:
                done.set()
                return

    consumer = loop.create_task(consume())
    waiter = loop.create_task(done.wait())
    await asyncio.wait({consumer, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for task in (consumer, waiter):
        task.cancel()
    await asyncio.gather(consumer, waiter, return_exceptions=True)
    state["cpu_s"] = time.process_time() - cpu
    await client.close()
    _save(latencies, args.latency_file)
    return state


# --- the baseline: raw frames through e2e_relay.py -------------------------------------------


async def _raw_connect(address: str, role: bytes) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_unix_connection(address)
    writer.write(role)
    if await reader.readexactly(1) != b"K":
        raise SystemExit("the relay did not acknowledge")
    return reader, writer


async def raw_pub(args: argparse.Namespace) -> dict[str, Any]:
    _reader, writer = await _raw_connect(args.address, b"P")
    body = _payload(args.size)
    frame = bytearray(LENGTH.pack(len(body))) + body
    pack_into, ident, monotonic_ns = HEADER.pack_into, args.id, time.monotonic_ns
    write, drain = writer.write, writer.drain
    _emit("READY raw")
    await _wait_go()
    pacer = _Pacer(args.rate)
    cpu = time.process_time()
    t_start = monotonic_ns()
    for seq in range(args.count):
        await pacer.wait(seq)
        pack_into(frame, LENGTH.size, monotonic_ns(), ident, seq)
        write(bytes(frame))
        await drain()
    t_end = monotonic_ns()
    cpu = time.process_time() - cpu
    writer.close()
    await writer.wait_closed()
    return {"sent": args.count, "t_start": t_start, "t_end": t_end, "cpu_s": cpu}


async def raw_sub(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    reader, writer = await _raw_connect(args.address, b"S")
    stop = asyncio.Event()
    _watch_stdin(loop, lambda line: stop.set() if line in ("STOP", "EOF") else None)
    _emit("READY raw")
    cpu = time.process_time()
    latencies = array("q")
    state: dict[str, Any] = {"received": 0, "dropped": 0, "t_first": 0, "t_last": 0}

    async def consume() -> None:
        unpack_length, unpack_header = LENGTH.unpack_from, HEADER.unpack_from
        monotonic_ns, record = time.monotonic_ns, latencies.append
        buffer = b""
        received, expect = 0, args.expect
        while received < expect:
            data = await reader.read(1 << 16)
            if not data:
                break
            buffer = buffer + data if buffer else data
            pos, size = 0, len(buffer)
            while size - pos >= 4:
                (length,) = unpack_length(buffer, pos)
                end = pos + 4 + length
                if end > size:
                    break
                now = monotonic_ns()
                record(now - unpack_header(buffer, pos + 4)[0])
                received += 1
                pos = end
                if received == 1:
                    state["t_first"] = now
                state["t_last"] = now
            buffer = buffer[pos:]
            state["received"] = received

    consumer = loop.create_task(consume())
    waiter = loop.create_task(stop.wait())
    await asyncio.wait({consumer, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for task in (consumer, waiter):
        task.cancel()
    await asyncio.gather(consumer, waiter, return_exceptions=True)
    state["cpu_s"] = time.process_time() - cpu
    writer.close()
    _save(latencies, args.latency_file)
    return state


def _save(latencies: array[int], path: str | None) -> None:
    if path:
        with open(path, "wb") as handle:
            latencies.tofile(handle)


def run(main: Coroutine[Any, Any, dict[str, Any]], loop_name: str) -> dict[str, Any]:
    """Run ``main`` on a new uvloop or asyncio loop."""
    if loop_name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def main() -> int:
    args = _parser().parse_args()
    if args.role.startswith("bus"):
        # What eventbus.eventloop.run would pick for an application started this way.
        os.environ["EVENTBUS_LOOP"] = args.loop
    role = {"bus-pub": bus_pub, "bus-sub": bus_sub, "raw-pub": raw_pub, "raw-sub": raw_sub}
    _emit(json.dumps(run(role[args.role](args), args.loop)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
