"""Differential property tests of the core (DESIGN §8).

Every backend (``both_cores``: the compiled core and its pure-Python twin) gets the same
generated input and must give the same result, or raise the same exception type with the
same message. Both are also held against naive oracles written here, in a different way
from the implementations: recursive matching over level lists, covering by brute force
over a finite universe of topics, and models that scan a plain list.
"""

from __future__ import annotations

import functools
import itertools
from types import SimpleNamespace
from typing import Any

from _differential import PROPERTY, PROPERTY_SLOW, agree, naive_match, naive_valid, outcome
from hypothesis import given
from hypothesis import strategies as st

# --- generated topics and filters ----------------------------------------------------------

# Besides plain words: characters on each side of the UTF-8 width boundaries, which the
# byte limit must count right.
GOOD_LEVELS = ["a", "b", "é", "日本", "🎉", "$SYS", "$x", "a$", "\u07ff", "\u0800", "\uffff"]
WILDCARDS = ["+", "#"]
BAD_LEVELS = [
    "",
    "a+",
    "#b",
    "a b",
    "\x00",
    "\t",
    "x\x1f",
    "\x7f",
    "\x85",
    "\u00a0",
    "\u2028",
    "\ud800",
    "\udfff",
]

levels = st.one_of(
    st.sampled_from(GOOD_LEVELS),
    st.sampled_from(WILDCARDS),
    st.sampled_from(BAD_LEVELS),
)
joined = st.lists(levels, min_size=1, max_size=6).map(".".join)
free_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
texts = st.one_of(joined, joined, joined, free_text, st.just(""))
non_str = st.one_of(st.binary(max_size=4), st.none(), st.integers(), st.just(["a"]))
limits = st.one_of(st.integers(-1, 40), st.sampled_from([256, 2**70, -(2**70)]))


@PROPERTY
@given(text=st.one_of(texts, non_str), max_bytes=limits, max_levels=limits)
def test_validation_agrees(
    both_cores: list[SimpleNamespace], text: object, max_bytes: int, max_levels: int
) -> None:
    for is_filter, name in ((False, "topic"), (True, "filter")):
        validate = [getattr(core.grammar, f"validate_{name}") for core in both_cores]
        split = [getattr(core.grammar, f"{name}_levels") for core in both_cores]
        result = agree([outcome(f, text) for f in validate])
        custom = agree(
            [outcome(f, text, max_bytes=max_bytes, max_levels=max_levels) for f in validate]
        )
        agree([outcome(f, text, max_bytes, max_levels) for f in split])
        if isinstance(text, str):
            assert (result[0] == "ok") is naive_valid(text, is_filter)
            assert (custom[0] == "ok") is naive_valid(text, is_filter, max_bytes, max_levels)
        else:
            assert result[0] is TypeError
            assert custom[0] is TypeError


@PROPERTY
@given(text=joined.filter(bool))
def test_byte_limit_is_exact(both_cores: list[SimpleNamespace], text: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    at = agree([outcome(core.grammar.validate_filter, text, max_bytes=size) for core in both_cores])
    assert (at[0] == "ok") is naive_valid(text, True, size)
    under = agree(
        [outcome(core.grammar.validate_filter, text, max_bytes=size - 1) for core in both_cores]
    )
    assert under[1].endswith(f": is {size} UTF-8 bytes, over the limit of {size - 1}")


@PROPERTY
@given(topic_filter=texts, name=texts)
def test_topic_matches_agrees_with_the_oracle(
    both_cores: list[SimpleNamespace], topic_filter: str, name: str
) -> None:
    result = agree([outcome(core.grammar.topic_matches, topic_filter, name) for core in both_cores])
    if naive_valid(topic_filter, True) and naive_valid(name, False):
        assert result == ("ok", naive_match(topic_filter.split("."), name.split(".")))
    else:
        assert result[0] is not None and result[0] != "ok"


# --- covering, by brute force ---------------------------------------------------------------

# Filters use these levels, at most three of them. A topic that one filter matches and the
# other does not can always be cut to one level more than the longer filter, and needs no
# literal but theirs and one they do not name, so this universe decides covering exactly.
COVER_LEVELS = ["a", "$s", "日", "+", "#"]
FRESH = "z"
UNIVERSE = [
    ".".join(parts)
    for size in range(1, 5)
    for parts in itertools.product(["a", "$s", "日", FRESH], repeat=size)
]


@st.composite
def cover_filters(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(COVER_LEVELS), min_size=1, max_size=3))
    if "#" in parts[:-1]:
        parts = parts[: parts.index("#") + 1]
    return ".".join(parts)


@functools.cache
def matched(topic_filter: str) -> frozenset[str]:
    flevels = topic_filter.split(".")
    return frozenset(t for t in UNIVERSE if naive_match(flevels, t.split(".")))


def brute_covers(outer: str, inner: str) -> bool:
    return matched(inner) <= matched(outer)


@PROPERTY
@given(outer=cover_filters(), inner=cover_filters())
def test_filter_covers_agrees_with_brute_force(
    both_cores: list[SimpleNamespace], outer: str, inner: str
) -> None:
    result = agree([outcome(core.grammar.filter_covers, outer, inner) for core in both_cores])
    assert result == ("ok", brute_covers(outer, inner))


def test_filter_covers_exhaustively(both_cores: list[SimpleNamespace]) -> None:
    filters = sorted(
        {
            ".".join(p[: p.index("#") + 1] if "#" in p else p)
            for n in range(1, 4)
            for p in itertools.product(COVER_LEVELS, repeat=n)
        }
    )
    for core in both_cores:
        covers = core.grammar.filter_covers
        wrong = [(o, i) for o in filters for i in filters if covers(o, i) != brute_covers(o, i)]
        assert wrong == [], core.name


# --- the trie against a list of pairs -------------------------------------------------------

# Few levels, so that filters share prefixes and a discard often empties or keeps nodes
# that other filters pass through.
TRIE_LEVELS = ["a", "b", "$s", "+", "#"]
trie_filters = st.lists(st.sampled_from(TRIE_LEVELS), min_size=1, max_size=3).map(".".join)
trie_topics = st.one_of(
    st.lists(st.sampled_from(["a", "b", "$s", "c"]), min_size=1, max_size=4).map(".".join),
    st.sampled_from(["", "a..b", "a.+", "a\x00"]),
)


class Token:
    """A value equal only to itself, as the broker's connections are."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Token({self.name})"


class Twin:
    """Equal to every Twin of the same key: of several, a merge keeps the first it meets."""

    def __init__(self, key: int, tag: str) -> None:
        self.key = key
        self.tag = tag

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Twin) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Twin({self.key}, {self.tag})"


# Values are drawn as indexes into one of these pools: only identity-equal values (the
# broker's case), or a mix of plain values and equal-but-distinct ones.
POOLS: dict[str, list[Any]] = {
    "tokens": [Token("a"), Token("b"), Token("c"), Token("d"), Token("e")],
    "mixed": [0, "v", ("conn", 1), Twin(1, "first"), Twin(1, "second")],
}
values = st.integers(0, 4)
# With None for the text, the op picks the index-th pair still present: "discard" takes it
# back, "match" asks for a topic that its filter matches.
trie_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["add", "add", "discard"]), trie_filters, values),
        st.tuples(st.sampled_from(["discard", "match"]), st.none(), st.integers(0, 40)),
        st.tuples(st.just("match"), trie_topics, st.none()),
    ),
    min_size=20,  # long enough to build, prune and rebuild shared paths
    max_size=60,
)
SWEEP = [
    ".".join(parts)
    for size in range(1, 4)
    for parts in itertools.product(["a", "b", "$s", "c"], repeat=size)
]


def topic_under(topic_filter: str, index: int) -> str:
    """A topic the (valid) filter matches: '+' as a fresh level, '#' as none or two."""
    parts = ["c" if part == "+" else part for part in topic_filter.split(".")]
    if parts[-1] == "#":
        parts[-1:] = ["c", "c"] if index % 2 or len(parts) == 1 else []
    return ".".join(parts)


@PROPERTY
@given(
    ops=trie_ops,
    cache_size=st.sampled_from([0, 1, 2, 4096]),
    pool=st.sampled_from(sorted(POOLS)),
)
def test_trie_agrees_with_a_list_of_pairs(
    both_cores: list[SimpleNamespace],
    ops: list[tuple[str, Any, Any]],
    cache_size: int,
    pool: str,
) -> None:
    tries = [core.trie.TopicTrie(cache_size=cache_size) for core in both_cores]
    pairs: list[tuple[str, object]] = []
    for op, text, value in ops:
        if text is not None and op != "match":
            value = POOLS[pool][value]
        if text is None:
            if not pairs:
                continue
            picked, held = pairs[value % len(pairs)]
            text, value = (topic_under(picked, value), None) if op == "match" else (picked, held)
        if op == "match":
            outs = [outcome(trie.match, text) for trie in tries]
            result = agree(outs)
            if result[0] == "ok":  # the very objects, not just equal ones, in the same order
                agree([("ok", [id(v) for v in out[1]]) for out in outs])
            if result[0] == "ok":
                expected = {v for f, v in pairs if naive_match(f.split("."), text.split("."))}
                assert len(result[1]) == len(expected)
                assert set(result[1]) == expected
        else:
            result = agree([outcome(getattr(trie, op), text, value) for trie in tries])
            if result[0] == "ok":
                present = (text, value) in pairs
                if op == "add":
                    assert result[1] is not present
                    if not present:
                        pairs.append((text, value))
                else:
                    assert result[1] is present
                    if present:
                        pairs.remove((text, value))
            else:
                assert not naive_valid(text, True)
        agree([(len(trie), trie.generation) for trie in tries])
        assert len(tries[0]) == len(pairs)
    for topic in SWEEP:
        expected = {v for f, v in pairs if naive_match(f.split("."), topic.split("."))}
        outs = [trie.match(topic) for trie in tries]
        agree([("ok", [id(v) for v in out]) for out in outs])
        found = outs[0]
        assert set(found) == expected


# --- plain and queue values, and the cache a change patches ---------------------------------

split_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["add", "add", "discard"]), trie_filters, values, st.booleans()),
        st.tuples(st.just("discard"), st.none(), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("match"), st.sampled_from(SWEEP), st.none(), st.booleans()),
    ),
    min_size=20,
    max_size=60,
)


@PROPERTY
@given(ops=split_ops, cache_size=st.sampled_from([0, 1, 3, 4096]))
def test_split_match_and_cache_patching_agree_with_a_list_of_triples(
    both_cores: list[SimpleNamespace], ops: list[tuple[str, Any, Any, bool]], cache_size: int
) -> None:
    """Random interleavings of add/discard (plain or queue) and match_split, on both twins,
    against a list of ``(filter, value, queue)``. With a cache big enough never to evict,
    a change must keep the cached answer (the very tuple) of every topic its filter does
    not match: the cache is patched, not cleared."""
    tries = [core.trie.TopicTrie(cache_size=cache_size) for core in both_cores]
    pool = POOLS["tokens"]
    triples: list[tuple[str, object, bool]] = []
    # Per twin: topic -> the last answer, for the identity check.
    last: list[dict[str, tuple[Any, Any]]] = [{} for _ in tries]
    for op, text, value, queue in ops:
        if op == "match":
            outs = [trie.match_split(text) for trie in tries]
            agree([("ok", [[id(v) for v in part] for part in out]) for out in outs])
            tlevels = text.split(".")
            for kind, part in ((False, outs[0][0]), (True, outs[0][1])):
                expected = {
                    v for f, v, q in triples if q is kind and naive_match(f.split("."), tlevels)
                }
                assert len(part) == len(expected)
                assert set(part) == expected
            plain, grouped = outs[0]
            assert tries[0].match(text) == tuple(dict.fromkeys(plain + grouped))
            for seen, out in zip(last, outs, strict=True):
                seen[text] = out
            continue
        if text is None:
            if not triples:
                continue
            text, held, queue = triples[value % len(triples)]
        else:
            held = pool[value]
        result = agree([outcome(getattr(trie, op), text, held, queue=queue) for trie in tries])
        if result[0] != "ok":
            assert not naive_valid(text, True)
            continue
        present = (text, held, queue) in triples
        assert result[1] is (not present if op == "add" else present)
        if result[1]:
            if op == "add":
                triples.append((text, held, queue))
            else:
                triples.remove((text, held, queue))
            flevels = text.split(".")
            for trie, seen in zip(tries, last, strict=True):
                for topic in list(seen):
                    if naive_match(flevels, topic.split(".")):
                        del seen[topic]
                    elif cache_size == 4096:
                        before = seen[topic]
                        now = trie.match_split(topic)
                        assert now[0] is before[0] and now[1] is before[1]
        agree([(len(trie), trie.generation) for trie in tries])
        assert len(tries[0]) == len(triples)


# --- the rights table against a list of rules -----------------------------------------------

rules = st.lists(
    st.tuples(
        st.one_of(cover_filters(), cover_filters(), st.sampled_from(["a..b", "#.a"])),
        st.sampled_from([1, 2, 3, 4, 6, 7]),
    ),
    max_size=5,
)
queries = st.lists(
    st.one_of(cover_filters(), st.sampled_from(UNIVERSE), st.sampled_from(["", "a+"])),
    max_size=8,
)


@PROPERTY_SLOW
@given(rule_list=rules, asked=queries)
def test_rights_agree_with_a_list_of_rules(
    both_cores: list[SimpleNamespace], rule_list: list[tuple[str, int]], asked: list[str]
) -> None:
    made = [outcome(core.rights.RightsTable, rule_list) for core in both_cores]
    if made[0][0] != "ok":
        agree(made)
        assert not all(naive_valid(f, True) for f, _ in rule_list)
        return
    assert all(kind == "ok" for kind, _ in made)
    tables = [table for _, table in made]
    for table in tables:
        assert table.rules == tuple(rule_list)
    for _ in range(2):  # the second round answers from the caches
        for text in asked:
            mask = agree([outcome(t.mask, text) for t in tables])
            publish = agree([outcome(t.may_publish, text) for t in tables])
            subscribe = agree([outcome(t.may_subscribe, text) for t in tables])
            if naive_valid(text, False):
                tlevels = text.split(".")
                bits = 0
                for f, b in rule_list:
                    if naive_match(f.split("."), tlevels):
                        bits |= b
                assert mask == ("ok", bits)
                assert publish == ("ok", bool(bits & 1))
            if naive_valid(text, True):
                allowed = any(b & 2 and brute_covers(f, text) for f, b in rule_list)
                assert subscribe == ("ok", allowed)


@PROPERTY
@given(
    bits=st.one_of(st.integers(-3, 8), st.sampled_from([2**31 - 1, 2**31, 2**64]), non_str),
    max_bytes=limits,
    max_levels=limits,
)
def test_rights_constructor_checks_agree(
    both_cores: list[SimpleNamespace], bits: object, max_bytes: int, max_levels: int
) -> None:
    """Bits and limits are checked once, in the constructor, the same way by both twins."""
    made = [
        outcome(
            core.rights.RightsTable, [("a.#", bits)], max_bytes=max_bytes, max_levels=max_levels
        )
        for core in both_cores
    ]
    kinds = [kind for kind, _ in made]
    assert len(set(kinds)) == 1
    if kinds[0] != "ok":
        agree(made)
        return
    agree([outcome(table.mask, "a.b") for _, table in made])
    agree(
        [
            outcome(core.trie.TopicTrie, max_bytes=max_bytes, max_levels=max_levels)[0]
            for core in both_cores
        ]
    )
