"""Splitting a byte stream into length-prefixed frames, on both backends."""

from __future__ import annotations

import array
from types import SimpleNamespace

import pytest

from eventbus import protocol
from eventbus.errors import FrameTooLarge, ProtocolError


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + body


BODIES = [b"hello", b"", b"\x00" * 70, bytes(range(256)), b"last"]
STREAM = b"".join(frame(body) for body in BODIES)


def test_one_frame(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter()
    assert splitter.feed(frame(b"payload")) == [b"payload"]
    assert splitter.buffered == 0


def test_several_frames_in_one_chunk(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter()
    bodies = splitter.feed(STREAM)
    assert bodies == BODIES
    assert all(type(body) is bytes for body in bodies)
    assert splitter.buffered == 0


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64, 1000])
def test_frames_split_across_chunks(core: SimpleNamespace, size: int) -> None:
    splitter = core.framing.FrameSplitter()
    out: list[bytes] = []
    for start in range(0, len(STREAM), size):
        out += splitter.feed(STREAM[start : start + size])
    assert out == BODIES
    assert splitter.buffered == 0


def test_zero_length_frame(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter()
    assert splitter.feed(frame(b"")) == [b""]
    assert splitter.feed(frame(b"") * 3) == [b"", b"", b""]
    assert splitter.feed(b"") == []


def test_buffered_counts_a_cut_frame(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter()
    data = frame(b"complete") + frame(b"cut off here")
    assert splitter.feed(data[:-5]) == [b"complete"]
    assert splitter.buffered == 4 + len(b"cut off here") - 5
    assert splitter.feed(data[-5:]) == [b"cut off here"]
    assert splitter.buffered == 0
    assert splitter.feed(b"\x01\x00") == []
    assert splitter.buffered == 2


def test_too_large_is_refused_from_the_header_alone(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter(max_frame=16)
    assert splitter.max_frame == 16
    assert splitter.feed(frame(b"x" * 16)) == [b"x" * 16]
    with pytest.raises(FrameTooLarge) as info:
        splitter.feed((17).to_bytes(4, "little"))  # no body has arrived
    assert str(info.value) == "frame of 17 bytes declared, over the limit of 16 bytes"
    assert isinstance(info.value, ProtocolError)


def test_too_large_header_split_across_chunks(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter(max_frame=100)
    header = (0xFFFFFFFF).to_bytes(4, "little")
    assert splitter.feed(frame(b"ok") + header[:3]) == [b"ok"]
    with pytest.raises(FrameTooLarge, match="frame of 4294967295 bytes declared"):
        splitter.feed(header[3:])


def test_default_limit_is_one_mebibyte(core: SimpleNamespace) -> None:
    splitter = core.framing.FrameSplitter()
    assert splitter.max_frame == core.framing.DEFAULT_MAX_FRAME == 1 << 20
    assert protocol.DEFAULT_MAX_FRAME == core.framing.DEFAULT_MAX_FRAME
    assert splitter.feed((1 << 20).to_bytes(4, "little")) == []
    with pytest.raises(FrameTooLarge, match="over the limit of 1048576 bytes"):
        core.framing.FrameSplitter().feed(((1 << 20) + 1).to_bytes(4, "little"))


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffer_types(core: SimpleNamespace, kind: type) -> None:
    splitter = core.framing.FrameSplitter()
    out: list[bytes] = []
    for start in range(0, len(STREAM), 9):
        out += splitter.feed(kind(STREAM[start : start + 9]))
    assert out == BODIES


def test_bodies_do_not_alias_the_input(core: SimpleNamespace) -> None:
    data = bytearray(frame(b"abc") + frame(b"de")[:3])
    splitter = core.framing.FrameSplitter()
    bodies = splitter.feed(data)
    data[:] = b"\xff" * len(data)
    assert bodies == [b"abc"]
    assert splitter.feed(b"\x00de") == [b"de"]


def test_memoryview_of_wider_items_counts_bytes(core: SimpleNamespace) -> None:
    words = array.array("H", [3, 0, 0x6261, 0x0063])  # frame(b"abc") plus a stray byte
    splitter = core.framing.FrameSplitter()
    assert splitter.feed(memoryview(words)) == [b"abc"]
    assert splitter.buffered == 1
    strided = memoryview(frame(b"ab").replace(b"", b"-")[1:])[::2]
    assert core.framing.FrameSplitter().feed(strided) == [b"ab"]


@pytest.mark.parametrize("data", ["", "text", [1, 0, 0, 0, 7], None, 5])
def test_non_buffers_are_refused(core: SimpleNamespace, data: object) -> None:
    with pytest.raises(TypeError, match="a bytes-like object is required"):
        core.framing.FrameSplitter().feed(data)
