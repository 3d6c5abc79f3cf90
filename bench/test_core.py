"""Micro-benchmarks of the core, compiled and pure Python side by side.

One group per operation (per subscription count for the trie), each run on both backends:
the two rows of a group are the compiled core and its pure-Python twin, and the factor in
parentheses is relative to the faster. Every benchmark warms up before it is measured. There
are no timing asserts: the numbers and the targets they are read against are in
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

import time
from types import SimpleNamespace
from typing import Any

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
from eventbus.protocol import encode_frame
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


# --- protobuf on the broker's hot path (the same for both backends) --------------------------

_IDENTITY = frames_pb2.ProcessIdentity(
    pid=4242, uid=1000, gid=1000, principal="procmond", client_name="procmond[4242]"
)


def _publish_body(size: int) -> bytes:
    frame = frames_pb2.Frame(publish=frames_pb2.Publish(topic=SAMPLE_TOPIC, payload=b"x" * size))
    return frame.SerializeToString()


@pytest.mark.parametrize("size", [64, 1024], ids=["64B", "1KiB"])
def test_encode_event(benchmark: Any, size: int) -> None:
    benchmark.group = "protobuf: EventEnvelope + encode_frame"
    payload = b"x" * size
    Frame, EventEnvelope = frames_pb2.Frame, frames_pb2.EventEnvelope

    def encode() -> bytes:
        envelope = EventEnvelope(
            topic=SAMPLE_TOPIC,
            payload=payload,
            timestamp_ns=time.time_ns(),
            publisher=_IDENTITY,
            reply_to="",
        )
        return encode_frame(Frame(event=envelope))

    benchmark(encode)


@pytest.mark.parametrize("size", [64, 1024], ids=["64B", "1KiB"])
def test_decode_publish(benchmark: Any, size: int) -> None:
    benchmark.group = "protobuf: decode a Publish frame"
    body = _publish_body(size)
    from_string = frames_pb2.Frame.FromString

    def decode() -> tuple[str, bytes]:
        publish = from_string(body).publish
        return publish.topic, publish.payload

    benchmark(decode)


@pytest.mark.parametrize("size", [64, 1024], ids=["64B", "1KiB"])
def test_decode_event(benchmark: Any, size: int) -> None:
    benchmark.group = "protobuf: decode an Event frame (subscriber side)"
    envelope = frames_pb2.EventEnvelope(
        topic=SAMPLE_TOPIC, payload=b"x" * size, timestamp_ns=1, publisher=_IDENTITY
    )
    body = frames_pb2.Frame(event=envelope).SerializeToString()
    from_string = frames_pb2.Frame.FromString

    def decode() -> tuple[str, bytes]:
        frame = from_string(body)
        frame.WhichOneof("body")
        event = frame.event
        return event.topic, event.payload

    benchmark(decode)


# --- the broker's per-publish work, end to end in one process --------------------------------


def test_broker_publish_path(benchmark: Any, core: SimpleNamespace) -> None:
    """What the broker does for one Publish frame between the splitter and the writes:
    decode, ACL check (cached), envelope, encode, route (cached match)."""
    benchmark.group = "broker publish path, 64 B, 1,000 subs"
    body = _publish_body(64)
    grant = procmond_grant(core)
    trie = trie_of(core, 1_000)
    Frame, EventEnvelope = frames_pb2.Frame, frames_pb2.EventEnvelope
    from_string = Frame.FromString

    def publish_path() -> int:
        frame = from_string(body)
        publish = getattr(frame, frame.WhichOneof("body"))
        topic = publish.topic
        if not grant.may_publish(topic):
            raise AssertionError(topic)
        envelope = EventEnvelope(
            topic=topic,
            payload=publish.payload,
            timestamp_ns=time.time_ns(),
            publisher=_IDENTITY,
            reply_to=publish.reply_to,
        )
        data = encode_frame(Frame(event=envelope))
        return len(trie.match(topic)) + len(data)

    benchmark(publish_path)
