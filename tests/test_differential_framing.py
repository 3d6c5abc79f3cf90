"""Differential property tests of the frame splitter (DESIGN §8): both twins against a
whole-stream parse, fed the same stream cut at the same points."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from _differential import PROPERTY, agree, outcome
from hypothesis import given
from hypothesis import strategies as st

from eventbus.errors import FrameTooLarge


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, bytes, list[int]]:
    """A frame limit, a stream (maybe with an oversized header in it) and its cut points."""
    limit = draw(st.sampled_from([0, 8, 16, 64]))
    sizes = draw(st.lists(st.integers(0, limit + 4), max_size=12))
    stream = b"".join(
        size.to_bytes(4, "little") + draw(st.binary(min_size=size, max_size=size)) for size in sizes
    )
    stream += draw(st.binary(max_size=6))  # maybe a trailing cut frame
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return limit, stream, cuts


def naive_parse(stream: bytes, limit: int) -> tuple[list[tuple[int, bytes]], int | None]:
    """The frames of a whole stream (each with the offset where it ends) and the offset at
    which an oversized header is complete, if any."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while len(stream) - pos >= 4:
        size = int.from_bytes(stream[pos : pos + 4], "little")
        if size > limit:
            return frames, pos + 4
        if pos + 4 + size > len(stream):
            break
        frames.append((pos + 4 + size, stream[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    return frames, None


@PROPERTY
@given(case=streams(), kind=st.sampled_from([bytes, bytearray, memoryview]))
def test_frame_splitter_agrees_with_a_whole_stream_parse(
    both_cores: list[SimpleNamespace], case: tuple[int, bytes, list[int]], kind: type
) -> None:
    limit, stream, cuts = case
    splitters = [core.framing.FrameSplitter(limit) for core in both_cores]
    frames, error_at = naive_parse(stream, limit)
    bounds = [0, *cuts, len(stream)]
    emitted = 0
    failed = False
    for start, end in itertools.pairwise(bounds):
        chunk = kind(stream[start:end])
        result = agree([outcome(s.feed, chunk) for s in splitters])
        agree([s.buffered for s in splitters])
        if failed:
            continue  # past the error only the backends' agreement is checked
        if error_at is not None and error_at <= end:
            size = int.from_bytes(stream[error_at - 4 : error_at], "little")
            assert result == (
                FrameTooLarge,
                f"frame of {size} bytes declared, over the limit of {limit} bytes",
            )
            failed = True
            continue
        done = [body for stop, body in frames if stop <= end]
        assert result == ("ok", done[emitted:])
        emitted = len(done)
        consumed = max([0] + [stop for stop, _ in frames if stop <= end])
        assert splitters[0].buffered == end - consumed
