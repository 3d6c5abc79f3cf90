"""The baseline of the end-to-end benchmark: the least a Python relay has to do.

Listens on a Unix socket. A client's first byte says what it is (``P`` publisher, ``S``
subscriber) and is answered ``K``. Everything a publisher sends after that is a stream of
frames (4-byte little-endian length, then the body); the relay forwards the complete frames
of each chunk it receives to every subscriber in one write each, and keeps a cut frame
until its rest arrives, so frames from several publishers never interleave. Per frame it
only hops over the length; no protobuf, no topics, no ACL, no flow control (buffers grow
instead of dropping).

Run by ``bench/e2e.py``: ``python e2e_relay.py PATH [--loop uvloop|asyncio]``; prints
``listening`` once it accepts connections, stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

_LENGTH_BYTES = 4


class _Relay:
    def __init__(self) -> None:
        self.subscribers: list[asyncio.Transport] = []


class _Peer(asyncio.Protocol):
    def __init__(self, relay: _Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.role = b""
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.role:
            self.role, data = data[:1], data[1:]
            if self.role == b"S":
                self.relay.subscribers.append(self.transport)  # type: ignore[arg-type]
            assert self.transport is not None
            self.transport.write(b"K")
            if not data:
                return
        if self.role != b"P":
            return
        buffer = self.pending + data if self.pending else data
        # Find where the last complete frame ends: one hop per frame, lengths only.
        pos, size = 0, len(buffer)
        while size - pos >= _LENGTH_BYTES:
            end = pos + _LENGTH_BYTES + int.from_bytes(buffer[pos : pos + _LENGTH_BYTES], "little")
            if end > size:
                break
            pos = end
        if pos:
            whole = buffer[:pos] if pos < size else buffer
            for subscriber in self.relay.subscribers:
                subscriber.write(whole)
        self.pending = buffer[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.role == b"S" and self.transport in self.relay.subscribers:
            self.relay.subscribers.remove(self.transport)


async def _serve(path: str) -> None:
    loop = asyncio.get_running_loop()
    relay = _Relay()
    server = await loop.create_unix_server(lambda: _Peer(relay), path)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("listening", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> int:
    parser = argparse.ArgumentParser(prog="e2e_relay.py")
    parser.add_argument("path")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(args.path))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
