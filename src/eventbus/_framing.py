"""Frame splitting, pure-Python reference of ``_fast/_framing.pyx``.

The stream is a sequence of frames: a 4-byte little-endian length N, then N bytes of body.
Bytes are fed in whatever chunks the transport delivers; complete bodies come out in order.
A declared length over the limit is refused as soon as its header is seen.
"""

from __future__ import annotations

from .errors import FrameTooLarge

__all__ = ["DEFAULT_MAX_FRAME", "FrameSplitter"]

DEFAULT_MAX_FRAME = 1 << 20
"""Default largest frame body, in bytes (1 MiB); the broker's limit is configurable.

The one definition for the package (``eventbus.protocol`` re-exports it); the compiled twin
repeats the value because a ``.pyx`` cannot share it, and the framing tests hold them equal.
"""
_HEADER = 4


class FrameSplitter:
    """Accumulates stream bytes and yields complete frame bodies."""

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    @property
    def max_frame(self) -> int:
        return self._max_frame

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame (non-zero at EOF: a cut frame)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data``; return the bodies of the frames it completes, in order.

        Raises :class:`FrameTooLarge` when a header declares more than ``max_frame`` bytes;
        its ``frames`` are the bodies completed before that header.
        """
        if not isinstance(data, (bytes, bytearray)):
            # Any buffer counts as its bytes (a memoryview's len() counts items, and its
            # items may be wider); anything else fails here, whatever its length.
            source = memoryview(data)
            data = source.cast("B") if source.c_contiguous else source.tobytes()
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray | memoryview = buffer
        else:
            view = data
        frames: list[bytes] = []
        size = len(view)
        pos = 0
        limit = self._max_frame
        while size - pos >= _HEADER:
            length = int.from_bytes(view[pos : pos + _HEADER], "little")
            if length > limit:
                error = FrameTooLarge(
                    f"frame of {length} bytes declared, over the limit of {limit} bytes"
                )
                error.frames = frames
                raise error
            end = pos + _HEADER + length
            if end > size:
                break
            frames.append(bytes(view[pos + _HEADER : end]))
            pos = end
        if buffer:
            del buffer[:pos]
        elif pos < size:
            buffer += view[pos:]
        return frames
