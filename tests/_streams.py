"""Test doubles shared by the transport tests of every platform (PYTEST_DONT_REWRITE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from eventbus.transport import Connection


class Accepted:
    """A handler that hands each accepted connection to the test and holds it open."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[Connection] = asyncio.Queue()
        self.release = asyncio.Event()

    async def __call__(self, connection: Connection) -> None:
        await self.connections.put(connection)
        await self.release.wait()

    async def next(self) -> Connection:
        return await self.connections.get()


@pytest.fixture
async def accepted() -> AsyncIterator[Accepted]:
    handler = Accepted()
    yield handler
    handler.release.set()


async def echo(connection: Connection) -> None:
    while data := await connection.read():
        connection.write(data)
        await connection.drain()


async def read_exactly(connection: Connection, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = await connection.read()
        assert data, f"EOF after {len(received)} of {size} bytes"
        received += data
    return bytes(received)


async def spin(turns: int = 50) -> None:
    """Let the event loop run other callbacks a number of times (ordering, not timing)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def read_line(connection: Connection) -> bytes:
    """Read until a newline; fails if the peer hangs up first."""
    line = b""
    while not line.endswith(b"\n"):
        data = await connection.read()
        assert data, f"EOF before the end of the line {line!r}"
        line += data
    return line
