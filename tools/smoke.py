"""Smoke test of an installed eventbus: a real broker process, one event published and received.

``python tools/smoke.py --expect-backend cython`` starts ``python -m eventbus.broker`` on a
private address (a socket in a temporary directory, a named pipe on Windows), connects a
``procmond`` that publishes a ``ProcessEvent`` and an ``agent`` that receives and decodes it,
then stops the broker (SIGTERM, which must exit 0; on Windows the process is terminated).
Run it from outside the source tree, so ``import eventbus`` finds the installed package.
Exits non-zero, saying what failed, on any error; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import IO

import eventbus
from eventbus import topics
from eventbus.v1.payloads_pb2 import ProcessEvent

DEADLINE = 30.0  # seconds for any one step; only a hang ever reaches it
STATS_OFF = ("--stats-interval", "0")


def _address(directory: str) -> str:
    if sys.platform == "win32":
        return rf"\\.\pipe\eventbus-smoke-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return os.path.join(directory, "bus", "eventbus.sock")


def _first_line(stream: IO[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        lines.put(stream.readline())

    threading.Thread(target=pump, daemon=True).start()
    return lines


async def _round_trip(address: str) -> None:
    async with (
        await eventbus.connect(address, principal="agent", reconnect=False) as agent,
        await eventbus.connect(address, principal="procmond", reconnect=False) as procmond,
    ):
        events = await agent.subscribe("events.process.#")
        sent = ProcessEvent(pid=4242, name="smoke")
        reached = await procmond.publish(topics.PROCESS_LIFECYCLE, sent, confirm=True)
        if reached != 1:
            raise SystemExit(f"smoke: the publish reached {reached} subscribers, not 1")
        envelope = await events.get(timeout=DEADLINE)
        received = envelope.decode()
        if received != sent or envelope.publisher.principal != "procmond":
            raise SystemExit(f"smoke: received {received!r} from {envelope.publisher!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect-backend", choices=["cython", "python"])
    args = parser.parse_args()
    where = Path(eventbus.__file__).resolve().parent
    print(f"smoke: eventbus {eventbus.__version__} ({eventbus.BACKEND}) from {where}")
    if args.expect_backend and args.expect_backend != eventbus.BACKEND:
        print(f"smoke: FAILED: backend {eventbus.BACKEND!r}, expected {args.expect_backend!r}")
        return 1
    with tempfile.TemporaryDirectory(prefix="eb-smoke-") as directory:
        address = _address(directory)
        log_path = os.path.join(directory, "broker.log")
        with open(log_path, "w", encoding="utf-8") as log:
            broker = subprocess.Popen(
                [sys.executable, "-m", "eventbus.broker", "--address", address, *STATS_OFF],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            assert broker.stdout is not None
            try:
                line = _first_line(broker.stdout).get(timeout=DEADLINE)
            except queue.Empty:
                line = ""
            if "listening on" not in line:
                raise SystemExit(f"smoke: the broker did not start: {line!r}")
            asyncio.run(_round_trip(address))
            if sys.platform == "win32":
                broker.terminate()  # no SIGTERM to deliver on Windows
                broker.wait(DEADLINE)
            else:
                broker.send_signal(signal.SIGTERM)
                code = broker.wait(DEADLINE)
                if code != 0:
                    raise SystemExit(f"smoke: the broker exited {code} on SIGTERM")
        except BaseException:
            with open(log_path, encoding="utf-8") as log:
                sys.stderr.write("--- broker log ---\n" + log.read())
            raise
        finally:
            if broker.poll() is None:
                broker.kill()
                broker.wait(DEADLINE)
            if broker.stdout is not None:
                broker.stdout.close()
    print("smoke: ok: published, routed through a broker process, received and decoded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
