"""The bridge's on-disk queue: what came from the local bus and JetStream has not yet
acknowledged, bounded, in order, surviving a restart of the bridge.

A directory of append-only **segments** and one **committed** file:

- ``<N>.seg`` (N: the number of its first record, 20 digits) holds records one after the
  other, each ``u32 length, u32 crc32, body`` (little-endian). Records are numbered from 0
  across segments, so a record's number is its segment's N plus its index there. Each record
  is written with one unbuffered ``write``: once :meth:`Spool.append` returns, the record
  survives the bridge being killed (not a power loss: segments are not fsynced).
- ``committed`` holds the number of the first record not yet acknowledged; it is replaced
  whole (written, fsynced, renamed), so it is always one complete number. Segments wholly
  below it are deleted.

On open, every segment is read back and checked; a torn record at the end (the bridge died
mid-write) is cut off. Records at or past the committed number are sent again; one whose
acknowledgement was lost goes out twice and JetStream drops the copy by its ``Nats-Msg-Id``.

The bound is on the segments' bytes on disk: a record that would pass ``max_bytes`` is
refused (the newest is dropped, as the broker drops a slow subscriber's newest events) and
the caller counts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import struct
import zlib
from dataclasses import dataclass

__all__ = ["Spool"]

log = logging.getLogger("eventbus.bridge")

_HEADER = struct.Struct("<II")
_SUFFIX = ".seg"
_COMMITTED = "committed"
_IDENTITY = "id"


def _read_at(fd: int, size: int, offset: int) -> bytes:
    # lseek + read rather than pread, which Windows lacks; one reader per fd.
    os.lseek(fd, offset, os.SEEK_SET)
    data = os.read(fd, size)
    if len(data) != size:
        raise OSError(f"spool: short read of {size} bytes at offset {offset}")
    return data


@dataclass
class _Segment:
    first: int  # number of its first record
    path: str
    count: int = 0  # records in it
    size: int = 0  # bytes on disk


class Spool:
    """A bounded persistent FIFO of byte records: :meth:`append`, :meth:`read`,
    :meth:`commit`."""

    def __init__(self, directory: str, *, max_bytes: int, segment_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._writer: int | None = None  # fd of the last segment, opened for appending
        self._next = 0  # number the next appended record gets
        self._committed = 0
        self._bytes = 0
        # Read cursor: the next record to hand out, and where it is.
        self._read_no = 0
        self._read_fd: int | None = None
        self._read_segment: _Segment | None = None
        self._read_offset = 0
        self._appended = asyncio.Event()
        #: Records found damaged on open and skipped (never silently).
        self.damaged = 0
        #: Random id of this spool, made when the directory is first used (it numbers
        #: records whose publisher did not number them).
        self.identity = ""

    # -- state ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended and not yet committed."""
        return self._next - self._committed

    @property
    def size_bytes(self) -> int:
        """Bytes of the segments on disk."""
        return self._bytes

    @property
    def committed(self) -> int:
        return self._committed

    # -- open / close -----------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory (mode 0700) or read back what a previous run left."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self.identity = self._read_identity()
        self._committed = self._read_committed()
        names = sorted(n for n in os.listdir(self.directory) if n.endswith(_SUFFIX))
        for name in names:
            first = int(name[: -len(_SUFFIX)])
            segment = _Segment(first, os.path.join(self.directory, name))
            self._scan(segment, last=name == names[-1])
            if self._segments and first < self._segments[-1].first + self._segments[-1].count:
                log.error("spool segment %s overlaps the one before it: skipped", segment.path)
                self.damaged += segment.count
                os.unlink(segment.path)
                continue
            self._segments.append(segment)
            self._bytes += segment.size
        if self._segments:
            last = self._segments[-1]
            self._next = last.first + last.count
        # Past every record left (their segments were lost): go on from there.
        self._next = max(self._next, self._committed)
        self._read_no = self._committed
        self._drop_committed_segments()

    def close(self) -> None:
        for fd in (self._writer, self._read_fd):
            if fd is not None:
                os.close(fd)
        self._writer = self._read_fd = None
        self._read_segment = None

    def _read_identity(self) -> str:
        path = os.path.join(self.directory, _IDENTITY)
        try:
            with open(path, encoding="ascii") as handle:
                identity = handle.read().strip()
            if identity:
                return identity
        except FileNotFoundError:
            pass
        identity = secrets.token_hex(8)
        with open(path + ".tmp", "w", encoding="ascii") as handle:
            handle.write(identity + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(path + ".tmp", path)
        return identity

    def _read_committed(self) -> int:
        try:
            with open(os.path.join(self.directory, _COMMITTED), encoding="ascii") as handle:
                return int(handle.read().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            log.error("spool %s: unreadable committed offset, resending everything", self.directory)
            return 0

    def _scan(self, segment: _Segment, *, last: bool) -> None:
        """Count the segment's valid records; cut off whatever follows the first bad one."""
        with open(segment.path, "rb") as handle:
            data = handle.read()
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[offset + _HEADER.size : end]) != crc:
                break
            segment.count += 1
            offset = end
        if offset != len(data):
            if not last:
                log.error("spool segment %s damaged after record %d", segment.path, segment.count)
                self.damaged += 1
            else:
                log.warning("spool segment %s: a torn record at the end was cut off", segment.path)
            with open(segment.path, "r+b") as handle:
                handle.truncate(offset)
        segment.size = offset

    # -- appending --------------------------------------------------------------------------

    def append(self, body: bytes) -> int | None:
        """Store ``body``; its record number, or None when it would pass ``max_bytes``."""
        size = _HEADER.size + len(body)
        if self._bytes + size > self.max_bytes:
            return None
        segment = self._segments[-1] if self._segments else None
        if segment is None or self._writer is None or segment.size >= self.segment_bytes:
            segment = self._new_segment()
        assert self._writer is not None
        os.write(self._writer, _HEADER.pack(len(body), zlib.crc32(body)) + body)
        segment.count += 1
        segment.size += size
        self._bytes += size
        number = self._next
        self._next += 1
        self._appended.set()
        return number

    def _new_segment(self) -> _Segment:
        if self._writer is not None:
            os.close(self._writer)
        path = os.path.join(self.directory, f"{self._next:020d}{_SUFFIX}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._writer = os.open(path, flags, 0o600)
        if self._segments and self._segments[-1].path == path:
            return self._segments[-1]  # reopened after a restart: keep appending to it
        segment = _Segment(self._next, path)
        self._segments.append(segment)
        return segment

    # -- reading ----------------------------------------------------------------------------

    def read_nowait(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records after those already read, with their numbers."""
        records: list[tuple[int, bytes]] = []
        while len(records) < limit and self._read_no < self._next:
            if self._read_fd is None and not self._seek_reader():
                break
            assert self._read_fd is not None and self._read_segment is not None
            segment = self._read_segment
            if self._read_no >= segment.first + segment.count:
                self._close_reader()  # the rest is in the next segment
                continue
            header = _read_at(self._read_fd, _HEADER.size, self._read_offset)
            length, _crc = _HEADER.unpack(header)
            body = _read_at(self._read_fd, length, self._read_offset + _HEADER.size)
            self._read_offset += _HEADER.size + length
            records.append((self._read_no, body))
            self._read_no += 1
        return records

    async def read(self, limit: int) -> list[tuple[int, bytes]]:
        """Like :meth:`read_nowait`, but waits until there is at least one record."""
        while True:
            records = self.read_nowait(limit)
            if records:
                return records
            self._appended.clear()
            await self._appended.wait()

    def _seek_reader(self) -> bool:
        """Open the segment holding record ``_read_no`` and find the record in it."""
        for segment in self._segments:
            if segment.first <= self._read_no < segment.first + segment.count:
                break
            if segment.first > self._read_no:
                # Records were lost to damage: say so and go on with what exists.
                log.error("spool: records %d..%d are missing", self._read_no, segment.first - 1)
                self.damaged += segment.first - self._read_no
                self._read_no = segment.first
                break
        else:
            return False
        self._read_segment = segment
        self._read_fd = os.open(segment.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        offset = 0
        for _ in range(self._read_no - segment.first):
            (length,) = struct.unpack("<I", _read_at(self._read_fd, 4, offset))
            offset += _HEADER.size + length
        self._read_offset = offset
        return True

    def _close_reader(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
        self._read_fd = None
        self._read_segment = None

    # -- committing -------------------------------------------------------------------------

    def commit(self, upto: int) -> None:
        """Records below ``upto`` are done: persist that, and free their segments."""
        if upto <= self._committed:
            return
        self._committed = upto
        path = os.path.join(self.directory, _COMMITTED)
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(f"{upto}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self._drop_committed_segments()

    def _drop_committed_segments(self) -> None:
        while self._segments:
            segment = self._segments[0]
            if segment.first + segment.count > self._committed:
                return
            if segment is self._segments[-1]:
                if segment.count == 0:
                    return  # a fresh segment: nothing to free
                if self._writer is not None:
                    os.close(self._writer)
                    self._writer = None
            if self._read_segment is segment:
                self._close_reader()
            os.unlink(segment.path)
            self._bytes -= segment.size
            self._segments.pop(0)
