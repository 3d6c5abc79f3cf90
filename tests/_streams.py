"""Test doubles and raw streams shared by the tests of every platform (PYTEST_DONT_REWRITE)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

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


async def open_raw(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain asyncio stream to the broker at ``address`` (a Unix socket, or a named pipe on
    Windows), bypassing eventbus's transport, for peers that misbehave on purpose."""
    if sys.platform == "win32":
        loop = asyncio.get_running_loop()
        assert isinstance(loop, asyncio.ProactorEventLoop), type(loop).__name__
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await loop.create_pipe_connection(lambda: protocol, address)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
    return await asyncio.open_unix_connection(address)


@contextlib.asynccontextmanager
async def raw_server(
    callback: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    address: str,
) -> AsyncIterator[None]:
    """A plain asyncio stream server on ``address`` (a Unix socket in a directory made for
    it, or a named pipe on Windows) for the length of the ``async with``."""
    loop = asyncio.get_running_loop()
    if sys.platform == "win32":
        assert isinstance(loop, asyncio.ProactorEventLoop), type(loop).__name__

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(loop=loop)
            return asyncio.StreamReaderProtocol(reader, callback, loop=loop)

        pipes = await loop.start_serving_pipe(factory, address)
        try:
            yield
        finally:
            for pipe in pipes:
                pipe.close()
        return
    os.makedirs(os.path.dirname(address), mode=0o700, exist_ok=True)
    server = await asyncio.start_unix_server(callback, address)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
