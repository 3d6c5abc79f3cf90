"""Fuzz target: the frame splitter, both twins against a naive reference.

Input layout (so that seeds can be written by hand, see ``make_corpus.py``)::

    byte 0      the limit: an index into LIMITS, or past its end a small limit
    byte 1      buffer types, two bits per chunk in turn: bytes, bytearray, memoryview,
                a strided (non-contiguous) memoryview
    byte 2      n, how many chunk sizes follow (mod 32)
    n bytes     chunk sizes, used in turn (0 is an empty feed)
    the rest    the byte stream, fed in those chunks

Every splitter gets the same chunks; after each feed all must agree with the reference on the
frames returned, ``buffered``, or the ``FrameTooLarge`` raised and its message. Any other
exception, or a disagreement, is a crash. A stream is over after its first error, as a
connection is.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from _harness import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from eventbus import _framing
    from eventbus.errors import FrameTooLarge

_fast_framing: ModuleType | None
try:
    _fast_framing = importlib.import_module("eventbus._fast._framing")
except ImportError:  # a pure-Python install: only the reference twin is fuzzed
    _fast_framing = None

TWINS: tuple[ModuleType, ...] = tuple(m for m in (_framing, _fast_framing) if m is not None)
# Limits worth a dedicated value; the compiled twin takes another path past C integers.
LIMITS = (_framing.DEFAULT_MAX_FRAME, 0, 1, 4, 255, 0xFFFFFFFF, 1 << 32, 1 << 64, -1)


class Reference:
    """Frame splitting as the spec says it, re-reading the whole stream on every feed."""

    def __init__(self, limit: int) -> None:
        self.stream = b""
        self.pos = 0
        self.limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        self.stream += chunk
        pos, frames = self.pos, []
        while len(self.stream) - pos >= 4:
            length = int.from_bytes(self.stream[pos : pos + 4], "little")
            if length > self.limit:
                raise FrameTooLarge(
                    f"frame of {length} bytes declared, over the limit of {self.limit} bytes"
                )
            if pos + 4 + length > len(self.stream):
                break
            frames.append(self.stream[pos + 4 : pos + 4 + length])
            pos += 4 + length
        self.pos = pos
        return frames

    @property
    def buffered(self) -> int:
        return len(self.stream) - self.pos


def as_kind(chunk: bytes, kind: int) -> bytes | bytearray | memoryview:
    """The same bytes as a bytes, bytearray, memoryview slice, or a strided memoryview."""
    if kind == 0:
        return chunk
    if kind == 1:
        return bytearray(chunk)
    if kind == 2:
        return memoryview(b"\x00" + chunk)[1:]
    # Not contiguous: every other byte of a doubled buffer.
    doubled = bytes(b for byte in chunk for b in (byte, 0xAA))
    return memoryview(doubled)[::2]


def outcome(feed: Callable[[Any], list[bytes]], chunk: object) -> tuple[str, object]:
    try:
        return "frames", feed(chunk)
    except FrameTooLarge as exc:
        return "FrameTooLarge", str(exc)


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    selector, kinds, count = data[0], data[1], data[2] % 32
    limit = LIMITS[selector] if selector < len(LIMITS) else selector - len(LIMITS)
    sizes = list(data[3 : 3 + count]) or [len(data)]
    stream = data[3 + count :]

    reference = Reference(limit)
    splitters = [twin.FrameSplitter(limit) for twin in TWINS]
    pos = 0
    for index in range(len(stream) + 1):  # at most one feed per byte, plus empty feeds
        size = sizes[index % len(sizes)]
        chunk = stream[pos : pos + size]
        pos += size
        expected = outcome(reference.feed, chunk)
        for twin, splitter in zip(TWINS, splitters, strict=True):
            got = outcome(splitter.feed, as_kind(chunk, (kinds >> 2 * (index % 4)) & 3))
            if got != expected:
                raise AssertionError(
                    f"{twin.__name__}: feed #{index} of {chunk!r} (limit {limit}) gave {got!r}, "
                    f"the reference {expected!r}"
                )
            if expected[0] == "frames" and splitter.buffered != reference.buffered:
                raise AssertionError(
                    f"{twin.__name__}: buffered {splitter.buffered} after feed #{index}, "
                    f"the reference {reference.buffered}"
                )
        if expected[0] != "frames" or pos >= len(stream):
            return


if __name__ == "__main__":
    fuzz(TestOneInput)
