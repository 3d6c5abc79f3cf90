"""Micro-benchmarks of the core, compiled and pure Python side by side.

One group per operation (per subscription count for the trie), each run on both backends:
the two rows of a group are the compiled core and its pure-Python twin, and the factor in
parentheses is relative to the faster. The wire groups (``encode_event``, ``encode_publish``,
``decode_publish``, ``decode_event``) have three rows: the compiled wire twin, the
pure-Python one and the generated protobuf classes doing the same work; the broker groups
replay ``Publishing.publish`` step by step. Every benchmark warms up before it is measured.
There are no timing asserts: the numbers and the targets they are read against are in
``docs/performance.md``.

How a cache miss is measured: the trie keeps its default cache (4096 topics, oldest out
first) and each call matches the next of 8192 distinct topics in turn, so by the time a
topic comes back 8191 others have pushed it out: every call walks the trie, builds the
result and inserts it in the cache, evicting the oldest, which is what a miss costs the
broker. ``test_cold_rotation_misses`` checks that it does miss. Cached calls rotate among
256 topics that all stay in the cache. The rotation is done in C (``map`` over
``itertools.cycle``); the ``reference`` group measures what that harness alone costs.
"""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from workloads import (
    SAMPLE_FILTER,
    SAMPLE_TOPIC,
    Conn,
    build_trie,
    published_topics,
    rotating,
    subscription_mix,
)

from eventbus.acl import Grant, default_policy
from eventbus.broker._routing import Router
from eventbus.broker._session import Session
from eventbus.protocol import encode_event, encode_frame, encode_publisher
from eventbus.transport import Connection, PeerCredentials
from eventbus.v1 import frames_pb2

# Warm up before measuring: the first benchmarks of a session otherwise run on a cold CPU.
pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=10_000)

SIZES = [10, 1_000, 100_000]
COLD_TOPICS = 8192  # twice the default cache of the trie
HOT_TOPICS = 256

_tries: dict[tuple[str, int], Any] = {}


@pytest.fixture(scope="session")
def topics() -> list[str]:
    return published_topics(COLD_TOPICS)


def trie_of(core: SimpleNamespace, size: int) -> Any:
    """The trie of ``size`` subscriptions for ``core``, built once per session."""
    key = (core.name, size)
    trie = _tries.get(key)
    if trie is None:
        trie = _tries[key] = build_trie(core, subscription_mix(size), cache_size=4096)
    return trie


def _procmond_rules(rights: Any) -> list[tuple[str, int]]:
    rule = default_policy().rule("procmond")
    return [(f, rights.PUBLISH) for f in rule.publish] + [
        (f, rights.SUBSCRIBE) for f in rule.subscribe
    ]


def procmond_table(core: SimpleNamespace) -> Any:
    """The compiled rights of the default policy's procmond, on ``core``."""
    return core.rights.RightsTable(_procmond_rules(core.rights))


def procmond_grant(core: SimpleNamespace) -> Grant:
    """procmond's Grant, with its rights table taken from ``core`` (not the selected one)."""
    rule = default_policy().rule("procmond")
    grant = Grant(rule.name, rule.publish, rule.subscribe, rule.admin, "bench")
    object.__setattr__(grant, "table", procmond_table(core))
    return grant


# --- reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [HOT_TOPICS, COLD_TOPICS], ids=lambda n: f"{n}topics")
def test_harness(benchmark: Any, topics: list[str], count: int) -> None:
    """What the rotation costs by itself (``len`` of the next topic): read the trie's
    cached and cold numbers net of it. Over 8192 topics it includes touching 8192 strings."""
    benchmark.group = "reference: harness (rotate + len)"
    benchmark(rotating(len, topics[:count]))


# --- grammar --------------------------------------------------------------------------------


def test_validate_topic(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "validate_topic"
    benchmark(core.grammar.validate_topic, SAMPLE_TOPIC)


def test_topic_matches(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "topic_matches"
    assert core.grammar.topic_matches(SAMPLE_FILTER, SAMPLE_TOPIC)
    benchmark(core.grammar.topic_matches, SAMPLE_FILTER, SAMPLE_TOPIC)


# --- trie -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}subs")
def test_trie_match_cold(
    benchmark: Any, core: SimpleNamespace, size: int, topics: list[str]
) -> None:
    benchmark.group = f"TopicTrie.match cold, {size:,} subs"
    trie = trie_of(core, size)
    benchmark(rotating(trie.match, topics))


@pytest.mark.parametrize("count", [HOT_TOPICS, COLD_TOPICS], ids=lambda n: f"{n}topics")
def test_trie_match_uncached(
    benchmark: Any, core: SimpleNamespace, topics: list[str], count: int
) -> None:
    """The walk alone, on a trie whose cache is off (``cache_size=0``): over 8192 topics the
    difference to the cold group is the cache upkeep of a miss; over 256 topics the nodes
    walked stay in the CPU caches, so the difference between the two is memory latency."""
    benchmark.group = f"TopicTrie.match uncached (cache_size=0), 100,000 subs, {count} topics"
    key = (core.name, -100_000)
    trie = _tries.get(key)
    if trie is None:
        trie = _tries[key] = build_trie(core, subscription_mix(100_000), cache_size=0)
    benchmark(rotating(trie.match, topics[:count]))


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}subs")
def test_trie_match_cached(
    benchmark: Any, core: SimpleNamespace, size: int, topics: list[str]
) -> None:
    benchmark.group = f"TopicTrie.match cached, {size:,} subs"
    trie = trie_of(core, size)
    hot = topics[:HOT_TOPICS]
    for topic in hot:
        trie.match(topic)
    benchmark(rotating(trie.match, hot))


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}subs")
def test_trie_add_discard(benchmark: Any, core: SimpleNamespace, size: int) -> None:
    """A subscribe then an unsubscribe of a filter one level below existing ones.

    Back to back, so the match cache is empty: the cost of clearing a full cache is not in it.
    """
    benchmark.group = f"TopicTrie.add + discard, {size:,} subs"
    trie = trie_of(core, size)
    add, discard = trie.add, trie.discard
    topic_filter = SAMPLE_TOPIC + ".conn-bench"
    value = Conn(10**9)

    def pair() -> None:
        add(topic_filter, value)
        discard(topic_filter, value)

    before = len(trie)
    benchmark(pair)
    assert len(trie) == before


def test_cold_rotation_misses(core: SimpleNamespace, topics: list[str]) -> None:
    """The cold rotation really misses the cache; the hot one really hits it.

    The twin's cache can be looked at. For the compiled trie, a miss shows as a new result
    tuple; only results with a single source may come back as the same tuple on a miss (the
    compiled trie keeps those on the node), so most, not all, must be new.
    """
    trie = trie_of(core, 100_000)
    cold = rotating(trie.match, topics)
    # One full rotation first: the trie is shared with the benchmarks before, whose hot topics
    # a change no longer evicts (it forgets only the topics its filter matches).
    for _ in topics:
        cold()
    if core.name == "python":
        for topic in topics * 2:
            assert topic not in trie._cache
            cold()
    first = [cold() for _ in range(len(topics))]
    second = [cold() for _ in range(len(topics))]
    assert first == second
    fresh = sum(1 for a, b in zip(first, second, strict=True) if a is not b)
    assert fresh >= 0.9 * len(topics)
    hot = topics[:HOT_TOPICS]
    assert all(trie.match(t) is trie.match(t) for t in hot)


# --- access control -------------------------------------------------------------------------


def test_acl_publish_table(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "ACL publish: RightsTable.may_publish, cached"
    table = procmond_table(core)
    assert table.may_publish(SAMPLE_TOPIC)
    benchmark(table.may_publish, SAMPLE_TOPIC)


def test_acl_publish_grant(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "ACL publish: Grant.may_publish, cached"
    grant = procmond_grant(core)
    assert grant.may_publish(SAMPLE_TOPIC)
    benchmark(grant.may_publish, SAMPLE_TOPIC)


def test_acl_publish_cold(benchmark: Any, core: SimpleNamespace, topics: list[str]) -> None:
    benchmark.group = "ACL publish: RightsTable.may_publish, cold"
    # 8192 topics through a 1024-entry cache: every call walks the rules.
    table = procmond_table(core)
    benchmark(rotating(table.may_publish, topics))


def test_acl_subscribe(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "ACL subscribe: RightsTable.may_subscribe, cached"
    table = procmond_table(core)
    assert table.may_subscribe("control.collector.task.process")
    benchmark(table.may_subscribe, "control.collector.task.process")


def test_acl_subscribe_cold(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "ACL subscribe: RightsTable.may_subscribe, cold"
    # Filters procmond may not have (events are the agent's): each call tries every rule.
    filters = [f"events.process.+.host-{n}.#" for n in range(4096)]
    table = procmond_table(core)
    assert not table.may_subscribe(filters[0])
    benchmark(rotating(table.may_subscribe, filters))


# --- framing --------------------------------------------------------------------------------

FRAME_BODY = 64
STREAM_BYTES = 1 << 20
CHUNK = 64 << 10


def frame_stream() -> tuple[list[bytes], int]:
    """1 MiB of whole frames with 64-byte bodies (68 bytes on the wire), in 64 KiB chunks.

    68 does not divide 64 KiB, so almost every chunk ends inside a frame.
    """
    frame = (FRAME_BODY).to_bytes(4, "little") + bytes(range(FRAME_BODY))
    count = STREAM_BYTES // len(frame)
    stream = frame * count
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)], count


def test_frame_splitter(benchmark: Any, core: SimpleNamespace) -> None:
    benchmark.group = "FrameSplitter.feed, 1 MiB of 64 B frames in 64 KiB chunks"
    chunks, count = frame_stream()
    splitter_class = core.framing.FrameSplitter

    def split() -> int:
        splitter = splitter_class()
        frames = 0
        for chunk in chunks:
            frames += len(splitter.feed(chunk))
        return frames

    assert split() == count
    benchmark.extra_info["frames"] = count
    benchmark.extra_info["bytes"] = sum(map(len, chunks))
    benchmark(split)


# --- encoding and decoding on the hot path (the same code for both backends) -----------------
#
# The broker writes each Event frame by hand (``protocol.encode_event``, with the publisher
# identity encoded once per connection) and the client each Publish frame
# (``protocol.encode_publish``); the ``protobuf`` rows build the same frames as messages and
# serialize them, as both did before, and produce the same bytes.

SIZES_B = [64, 1024]
SIZE_IDS = ["64B", "1KiB"]

_IDENTITY = frames_pb2.ProcessIdentity(
    pid=4242,
    uid=1000,
    gid=1000,
    principal="procmond",
    client_name="procmond[4242]",
    connection_id=7,
)
_PUBLISHER = encode_publisher(_IDENTITY)
_MAX_FRAME = 1 << 20


def _publish_body(size: int) -> bytes:
    frame = frames_pb2.Frame(publish=frames_pb2.Publish(topic=SAMPLE_TOPIC, payload=b"x" * size))
    return frame.SerializeToString()


def _event_protobuf(payload: bytes, timestamp_ns: int) -> bytes:
    envelope = frames_pb2.EventEnvelope(
        topic=SAMPLE_TOPIC,
        payload=payload,
        timestamp_ns=timestamp_ns,
        publisher=_IDENTITY,
        reply_to="",
    )
    return encode_frame(frames_pb2.Frame(event=envelope))


HOWS = ["cython", "python", "protobuf"]


def wire_of(how: str) -> Any:
    """The wire twin of a row (``cython``, ``python``), skipped when it is not built."""
    if how == "python":
        return importlib.import_module("eventbus._wire")
    try:
        return importlib.import_module("eventbus._fast._wire")
    except ImportError as exc:
        pytest.skip(f"compiled core not built ({exc})")


@pytest.mark.parametrize("size", SIZES_B, ids=SIZE_IDS)
@pytest.mark.parametrize("how", HOWS)
def test_encode_event(benchmark: Any, size: int, how: str) -> None:
    """The broker, per event: one Event frame with its length prefix (timestamp included)."""
    benchmark.group = f"encode_event: an Event frame (broker), {size} B payload"
    payload = b"x" * size
    time_ns = time.time_ns
    if how == "protobuf":

        def encode() -> bytes:
            return _event_protobuf(payload, time_ns())

    else:
        encode_event: Callable[..., bytes] = wire_of(how).encode_event
        assert encode_event(SAMPLE_TOPIC, payload, 1, _PUBLISHER) == _event_protobuf(payload, 1)

        def encode() -> bytes:
            return encode_event(SAMPLE_TOPIC, payload, time_ns(), _PUBLISHER, b"", "")

    benchmark(encode)


@pytest.mark.parametrize("size", SIZES_B, ids=SIZE_IDS)
@pytest.mark.parametrize("how", HOWS)
def test_encode_publish(benchmark: Any, size: int, how: str) -> None:
    """The client, per unconfirmed publish: one Publish frame, checked against the limit."""
    benchmark.group = f"encode_publish: a Publish frame (client), {size} B payload"
    payload = b"x" * size
    Frame, Publish = frames_pb2.Frame, frames_pb2.Publish
    if how == "protobuf":

        def encode() -> bytes:
            return encode_frame(
                Frame(publish=Publish(topic=SAMPLE_TOPIC, payload=payload)), max_frame=_MAX_FRAME
            )

    else:
        encode_publish: Callable[..., bytes] = wire_of(how).encode_publish
        expected = (len(_publish_body(size))).to_bytes(4, "little") + _publish_body(size)
        assert encode_publish(SAMPLE_TOPIC, payload, max_frame=_MAX_FRAME) == expected

        def encode() -> bytes:
            return encode_publish(SAMPLE_TOPIC, payload, 0, b"", "", max_frame=_MAX_FRAME)

    benchmark(encode)


@pytest.mark.parametrize("size", SIZES_B, ids=SIZE_IDS)
@pytest.mark.parametrize("how", HOWS)
def test_decode_publish(benchmark: Any, size: int, how: str) -> None:
    """The broker, per publish: the frame's kind, then its topic and payload."""
    benchmark.group = f"decode_publish: a Publish frame (broker), {size} B payload"
    body = _publish_body(size)
    if how == "protobuf":
        from_string = frames_pb2.Frame.FromString

        def decode() -> tuple[str, bytes]:
            frame = from_string(body)
            frame.WhichOneof("body")
            publish = frame.publish
            return publish.topic, publish.payload

    else:
        wire = wire_of(how)
        frame_kind, decode_publish, kind = wire.frame_kind, wire.decode_publish, wire.FRAME_PUBLISH

        def decode() -> tuple[str, bytes]:
            assert frame_kind(body) == kind
            publish = decode_publish(body)
            return publish.topic, publish.payload

    assert decode() == (SAMPLE_TOPIC, b"x" * size)
    benchmark(decode)


def _event_body(size: int) -> bytes:
    identity = frames_pb2.ProcessIdentity()
    identity.CopyFrom(_IDENTITY)
    identity.instance_id = 0x1234_5678_9ABC_DEF0
    publisher = encode_publisher(identity)
    return encode_event(SAMPLE_TOPIC, b"x" * size, time.time_ns(), publisher, sequence=42)[4:]


@pytest.mark.parametrize("size", SIZES_B, ids=SIZE_IDS)
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("reads", ["ids", "publisher"])
def test_decode_event(benchmark: Any, size: int, how: str, reads: str) -> None:
    """The subscriber, per event: kind, topic, payload and the publisher's instance id and
    sequence (gap detection), read from the raw bytes (``ids``) or from the parsed
    identity (``publisher``, the lazy parse; for protobuf both are the same)."""
    benchmark.group = f"decode_event + {reads}: an Event frame (subscriber), {size} B payload"
    body = _event_body(size)
    if how == "protobuf":
        from_string = frames_pb2.Frame.FromString

        def decode() -> tuple[str, bytes, int, int]:
            frame = from_string(body)
            frame.WhichOneof("body")
            event = frame.event
            publisher = event.publisher
            return event.topic, event.payload, publisher.instance_id, publisher.sequence

    elif reads == "ids":
        wire = wire_of(how)
        frame_kind, decode_event, kind = wire.frame_kind, wire.decode_event, wire.FRAME_EVENT

        def decode() -> tuple[str, bytes, int, int]:
            assert frame_kind(body) == kind
            event = decode_event(body)
            return event.topic, event.payload, event.publisher_instance_id, event.publisher_sequence

    else:
        wire = wire_of(how)
        frame_kind, decode_event, kind = wire.frame_kind, wire.decode_event, wire.FRAME_EVENT

        def decode() -> tuple[str, bytes, int, int]:
            assert frame_kind(body) == kind
            event = decode_event(body)
            publisher = event.publisher
            return event.topic, event.payload, publisher.instance_id, publisher.sequence

    assert decode() == (SAMPLE_TOPIC, b"x" * size, 0x1234_5678_9ABC_DEF0, 42)
    benchmark(decode)


# --- the broker's per-publish work, in one process -------------------------------------------


def _publish_step(grant: Grant) -> Any:
    """``Broker._dispatch`` + ``Publishing.publish`` up to the routing, for one Publish body:
    decode, frame kind, the cached ACL check, ``encode_event`` with the connection's encoded
    identity. Returns a function of the body giving ``(topic, encoded event, reply_to)``."""
    from_string = frames_pb2.Frame.FromString
    time_ns = time.time_ns

    def step(body: bytes) -> tuple[str, bytes, str]:
        frame = from_string(body)
        kind = frame.WhichOneof("body")
        publish = getattr(frame, kind)
        request_id = publish.request_id
        topic = publish.topic
        reply_to = publish.reply_to
        if not grant.may_publish(topic):
            raise AssertionError(topic)
        data = encode_event(
            topic,
            publish.payload,
            time_ns(),
            _PUBLISHER,
            publish.correlation.SerializeToString() if publish.HasField("correlation") else b"",
            reply_to,
        )
        assert not request_id
        return topic, data, reply_to

    return step


def test_broker_publish_path(benchmark: Any, core: SimpleNamespace) -> None:
    """Decode, ACL check (cached), ``encode_event``, route (cached match, 1,000 subs)."""
    benchmark.group = "broker publish path, 64 B, 1,000 subs: decode + ACL + encode + match"
    body = _publish_body(64)
    step = _publish_step(procmond_grant(core))
    match = trie_of(core, 1_000).match

    def publish_path() -> int:
        topic, data, _ = step(body)
        return len(match(topic)) + len(data)

    benchmark(publish_path)


class _NullConn:
    """The part of a Connection a Session uses; writes go nowhere."""

    def __init__(self, ident: int) -> None:
        self.peer = PeerCredentials(pid=ident, uid=1000, gid=1000)
        self.writes = 0

    def set_write_buffer_limits(self, high: int, low: int | None = None) -> None:
        pass

    def write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.writes += 1


def _overflow(session: Session, answer: bool) -> bool:
    raise AssertionError("a null connection never fills")


FLUSH_EVERY = 64


@pytest.mark.parametrize("subscribers", [1, 4], ids=lambda n: f"{n}sub")
def test_broker_publish_fan_out(benchmark: Any, core: SimpleNamespace, subscribers: int) -> None:
    """The publish path through the broker's own ``Router.fan_out`` and ``Session.deliver``
    (queue per connection), with the queued frames flushed every 64 publishes, as the broker
    does once per read pass (one write per connection); the writes themselves go nowhere.

    The router holds the 1,000-subscription mix (minus the filters that match the published
    topic) on other connections, plus ``events.process.#`` for each subscriber."""
    benchmark.group = f"broker publish path + fan-out to {subscribers}, 64 B, 1,000 subs"
    dirty: list[Session] = []
    sessions: dict[Conn, Session] = {}
    router = Router(255, 16)
    router._trie = core.trie.TopicTrie(cache_size=4096)

    def session_of(n: int) -> Session:
        # _NullConn has only the part of a Connection that Session uses
        return Session(cast(Connection, _NullConn(n)), n, 8 << 20, _overflow, dirty)

    for sub_id, (topic_filter, conn) in enumerate(subscription_mix(1_000)):
        if core.grammar.topic_matches(topic_filter, SAMPLE_TOPIC):
            continue
        if conn not in sessions:
            sessions[conn] = session_of(len(sessions) + 100)
        router.subscribe(sessions[conn], sub_id, topic_filter, "")
    readers = [session_of(i + 1) for i in range(subscribers)]
    for reader in readers:
        router.subscribe(reader, 1, "events.process.#", "")
    body = _publish_body(64)
    step = _publish_step(procmond_grant(core))
    fan_out = router.fan_out
    count = itertools.count(1)

    def publish_path() -> tuple[int, int]:
        topic, data, reply_to = step(body)
        delivered_dropped = fan_out(topic, data, reply_to)
        if not next(count) % FLUSH_EVERY:
            for session in dirty:
                session.flush()
            dirty.clear()
        return delivered_dropped

    for _ in range(FLUSH_EVERY):
        assert publish_path() == (subscribers, 0)
    assert all(
        cast(_NullConn, r.conn).writes == 1 and r.messages_out == FLUSH_EVERY for r in readers
    )
    benchmark(publish_path)
