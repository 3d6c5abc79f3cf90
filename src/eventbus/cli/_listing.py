"""The broker's client list (an admin request), shared by ``clients``, ``stats``, ``top``
and ``kick``."""

from __future__ import annotations

import time

from ..client import Client
from ..v1 import frames_pb2

__all__ = ["age", "fetch_clients", "format_table", "human_bytes"]


async def fetch_clients(client: Client) -> list[frames_pb2.ClientInfo]:
    """Every connection, as the broker lists it (needs the admin right)."""
    return await client.list_subscriptions(all_clients=True)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"
        count /= 1024
    return f"{count:.1f}GiB"


def age(connected_at_ns: int) -> str:
    seconds = max(0, int(time.time() - connected_at_ns / 1e9))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; numbers (all but the text columns) right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = []
        for index, cell in enumerate(row):
            text = str(cell)
            numeric = text[:1].isdigit() and index > 0
            cells.append(text.rjust(widths[index]) if numeric else text.ljust(widths[index]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
