"""One NATS process of the end-to-end benchmark: a publisher or a subscriber, with nats-py.

Run by ``bench/e2e.py``, never by hand, against the ``nats-server`` it starts on 127.0.0.1.
Roles ``nats-pub`` / ``nats-sub``; the protocol with the parent, the payloads (header of
``e2e_worker.py``, padded to ``--size``), the pacing and the latency file are those of
``e2e_worker.py``, whose helpers this module uses, so the parent counts every peer alike.

The publisher publishes on ``events.process.lifecycle.host-0.collector-<id>`` (core NATS, at
most once, no confirmation) and ends its window with ``flush()``: a round trip to the server
after the last publish, so that, like the bus publisher whose ``publish`` drains its write
buffer, it stops the clock with everything handed over. The subscriber subscribes to
``events.process.>`` and counts what its callback receives; the messages nats-py discards
when a subscription's pending limits overflow (each reported as a slow-consumer error) are
counted as ``dropped``. The loss the parent reports is sent - received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from typing import Any

from e2e_worker import HEADER, _emit, _Pacer, _payload, _save, _wait_go, _watch_stdin, run

PUB_SUBJECT = "events.process.lifecycle.host-0.collector-{id}"
SUB_SUBJECT = "events.process.>"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2e_nats_worker.py")
    parser.add_argument("role", choices=["nats-pub", "nats-sub"])
    parser.add_argument("--address", required=True, help="nats://127.0.0.1:PORT")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--id", type=int, default=0)
    parser.add_argument("--count", type=int, default=0, help="messages to publish")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0: unpaced")
    parser.add_argument("--expect", type=int, default=0, help="messages a subscriber waits for")
    parser.add_argument("--latency-file")
    return parser


async def _connect(address: str, name: str, **options: Any) -> Any:
    import nats

    async def quiet(_exc: Exception) -> None:
        pass

    options.setdefault("error_cb", quiet)
    return await nats.connect(
        address, name=name, allow_reconnect=False, connect_timeout=5, **options
    )


async def nats_pub(args: argparse.Namespace) -> dict[str, Any]:
    nc = await _connect(args.address, "bench-pub")
    subject = PUB_SUBJECT.format(id=args.id)
    payload = _payload(args.size)
    pack_into, ident = HEADER.pack_into, args.id
    publish, monotonic_ns = nc.publish, time.monotonic_ns
    _emit("READY nats")
    await _wait_go()
    pacer = _Pacer(args.rate)
    cpu = time.process_time()
    t_start = monotonic_ns()
    for seq in range(args.count):
        await pacer.wait(seq)
        pack_into(payload, 0, monotonic_ns(), ident, seq)
        await publish(subject, bytes(payload))
    await nc.flush()
    t_end = monotonic_ns()
    cpu = time.process_time() - cpu
    await nc.close()
    return {"sent": args.count, "t_start": t_start, "t_end": t_end, "cpu_s": cpu}


async def nats_sub(args: argparse.Namespace) -> dict[str, Any]:
    from nats.errors import SlowConsumerError

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    latencies = array("q")
    state: dict[str, Any] = {"received": 0, "dropped": 0, "t_first": 0, "t_last": 0}
    expect = args.expect
    unpack_from, monotonic_ns, record = HEADER.unpack_from, time.monotonic_ns, latencies.append

    async def on_error(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            state["dropped"] += 1
            if state["received"] + state["dropped"] >= expect:
                done.set()

    async def on_message(msg: Any) -> None:
        now = monotonic_ns()
        record(now - unpack_from(msg.data)[0])
        received = state["received"] + 1
        state["received"] = received
        if received == 1:
            state["t_first"] = now
        state["t_last"] = now
        if received + state["dropped"] >= expect:
            done.set()

    nc = await _connect(args.address, "bench-sub", error_cb=on_error)
    await nc.subscribe(SUB_SUBJECT, cb=on_message)
    await nc.flush()  # the server has the subscription before the parent says GO
    _watch_stdin(loop, lambda line: done.set() if line in ("STOP", "EOF") else None)
    _emit("READY nats")
    cpu = time.process_time()
    await done.wait()
    state["cpu_s"] = time.process_time() - cpu
    await nc.close()
    _save(latencies, args.latency_file)
    return state


def main() -> int:
    args = _parser().parse_args()
    role = {"nats-pub": nats_pub, "nats-sub": nats_sub}
    _emit(json.dumps(run(role[args.role](args), args.loop)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
