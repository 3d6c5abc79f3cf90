"""Deterministic workloads of the micro-benchmarks (fixed seeds).

A subscription mix over the topic hierarchy of DESIGN §2 with per-host, per-collector and
per-connection levels, and the topics a broker would route through it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

KINDS: dict[str, tuple[str, ...]] = {
    "process": ("lifecycle", "metadata", "tree", "integrity", "anomaly", "batch"),
    "network": ("flow", "connection", "dns", "listen"),
    "filesystem": ("create", "modify", "delete", "rename"),
    "performance": ("cpu", "memory", "disk", "io"),
}
HOSTS = 1000
COLLECTORS = 8

SAMPLE_TOPIC = "events.process.lifecycle.host-17.collector-3"
SAMPLE_FILTER = "events.process.+.host-17.#"


class Conn:
    """Stands for a broker connection: hashed by identity, like the broker's sessions."""

    __slots__ = ("id",)

    def __init__(self, ident: int) -> None:
        self.id = ident

    def __repr__(self) -> str:
        return f"Conn({self.id})"


def _event(rng: random.Random) -> tuple[str, str, str, str]:
    kind = rng.choice(tuple(KINDS))
    return (
        kind,
        rng.choice(KINDS[kind]),
        f"host-{rng.randrange(HOSTS)}",
        f"collector-{rng.randrange(COLLECTORS)}",
    )


def subscription_mix(count: int, seed: int = 1) -> list[tuple[str, Conn]]:
    """``count`` distinct ``(filter, connection)`` pairs, a mix a busy broker could hold.

    About 55% deep literal filters (``events.K.S.host-H.collector-C``), 10% one level deeper
    per connection (``....conn-N``), 20% with ``+`` at one or two levels, 13.5% ending in
    ``#`` below a host, and 1.5% shallow: the collectors' control topics and the agents'
    ``events.#``, ``control.health.#``, ``$SYS.#`` (held by four agent connections, so a
    match returns a handful of values, not thousands). Values come from a pool of
    ``count // 50`` connections.
    """
    rng = random.Random(seed)
    conns = [Conn(i) for i in range(max(16, count // 50))]
    agents = [Conn(-1 - i) for i in range(4)]
    pairs: dict[tuple[str, Conn], None] = {}
    shallow = (
        "events.#",
        "events.process.#",
        "events.network.#",
        "control.health.#",
        "$SYS.#",
        "$SYS.client.+",
        "control.collector.lifecycle",
        "control.collector.config",
        "control.health.diagnostics",
        *(f"control.collector.task.{kind}" for kind in KINDS),
    )
    while len(pairs) < count:
        kind, sub, host, collector = _event(rng)
        owner = rng.choice(conns)
        r = rng.random()
        if r < 0.55:
            topic_filter = f"events.{kind}.{sub}.{host}.{collector}"
        elif r < 0.65:
            topic_filter = f"events.{kind}.{sub}.{host}.{collector}.conn-{owner.id}"
        elif r < 0.77:
            topic_filter = f"events.{kind}.+.{host}.{collector}"
        elif r < 0.775:
            topic_filter = f"events.{kind}.{sub}.+.{collector}"
        elif r < 0.85:
            topic_filter = f"events.+.{sub}.{host}.+"
        elif r < 0.97:
            topic_filter = f"events.{kind}.{sub}.{host}.#"
        elif r < 0.985:
            topic_filter = f"events.{kind}.+.{host}.#"
        else:
            topic_filter = rng.choice(shallow)
            owner = rng.choice(agents)
        pairs[(topic_filter, owner)] = None
    return list(pairs)


def published_topics(count: int, seed: int = 2) -> list[str]:
    """``count`` distinct topics a broker would route: mostly per-collector events, some
    control and ``$SYS`` topics."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    extra = (
        "control.health.heartbeat",
        "control.health.status",
        "control.collector.config",
        "$SYS.client.connected",
        "$SYS.broker.stats",
    )
    while len(found) < count:
        if rng.random() < 0.01:
            topic = rng.choice(extra)
            if topic in found:
                continue
        else:
            topic = ".".join(("events", *_event(rng)))
        found[topic] = None
    return list(found)


def build_trie(core: SimpleNamespace, pairs: list[tuple[str, Conn]], cache_size: int) -> Any:
    trie = core.trie.TopicTrie(cache_size=cache_size)
    for topic_filter, value in pairs:
        trie.add(topic_filter, value)
    return trie


def rotating(function: Callable[[Any], Any], inputs: list[Any]) -> Callable[[], Any]:
    """A zero-argument callable that applies ``function`` to the next of ``inputs`` in turn.

    ``map`` over ``itertools.cycle`` does the rotation in C, so the harness adds about what
    a direct ``benchmark(function, arg)`` call adds; the ``reference`` group measures it.
    """
    return map(function, itertools.cycle(inputs)).__next__
