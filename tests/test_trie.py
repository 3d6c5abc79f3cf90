"""The subscription trie, on both backends (the ``core`` fixture)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eventbus.errors import InvalidTopic


def test_add_match_len_generation(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    assert len(trie) == 0
    assert trie.generation == 0
    assert trie.match("events.process.lifecycle") == ()
    assert trie.add("events.process.+", "agent") is True
    assert trie.add("events.#", "logger") is True
    assert len(trie) == 2
    assert trie.generation == 2
    assert set(trie.match("events.process.lifecycle")) == {"agent", "logger"}
    assert trie.match("events") == ("logger",)
    assert trie.match("control.health") == ()
    assert isinstance(trie.match("events.process.tree"), tuple)


def test_adding_a_pair_twice_changes_nothing(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    assert trie.add("a.b", 1) is True
    generation = trie.generation
    assert trie.add("a.b", 1) is False
    assert len(trie) == 1
    assert trie.generation == generation
    assert trie.add("a.b", 2) is True
    assert trie.add("a.+", 1) is True
    assert len(trie) == 3


def test_each_value_once_even_when_several_filters_match(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    for topic_filter in ("#", "a.#", "a.b.#", "a.+", "+.b", "a.b", "+.+"):
        trie.add(topic_filter, "same")
    trie.add("a.b", "other")
    result = trie.match("a.b")
    assert sorted(result) == ["other", "same"]
    assert len(result) == 2


def test_many_matching_filters(core: SimpleNamespace) -> None:
    filters = ["#", "a.#", "+.#", "a.b.#", "+.b.#", "a.+.#", "+.+.#", "a.b", "+.b", "a.+", "+.+"]
    filters += ["a.b.c.#", "+.+.+.#"]  # these two match nothing here
    trie = core.trie.TopicTrie()
    for index, topic_filter in enumerate(filters):
        trie.add(topic_filter, index)
        trie.add(topic_filter, "shared")
    expected = {index for index, f in enumerate(filters) if f.count(".") < 3} | {"shared"}
    result = trie.match("a.b")
    assert set(result) == expected
    assert len(result) == len(expected)
    assert trie.match("a.b") == result


def test_values_are_arbitrary_hashables(core: SimpleNamespace) -> None:
    class Subscriber:
        pass

    values = [None, 0, "x", ("conn", 7), frozenset({1, 2}), Subscriber(), 2.5, b"raw"]
    trie = core.trie.TopicTrie()
    for value in values:
        trie.add("a.+", value)
    assert list(trie.match("a.b")) == values
    assert trie.discard("a.+", values[5]) is True
    assert values[5] not in trie.match("a.b")


def test_equal_values_from_several_filters_merge_to_the_first(core: SimpleNamespace) -> None:
    class Key:
        def __init__(self, key: int) -> None:
            self.key = key

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Key) and other.key == self.key

        def __hash__(self) -> int:
            return hash(self.key)

    class Connection:
        pass

    first, second, conn = Key(1), Key(1), Connection()
    trie = core.trie.TopicTrie()
    trie.add("a.#", first)  # '#' values come before those of deeper filters
    trie.add("a.b", second)
    trie.add("a.b", conn)
    trie.add("a.+", conn)
    result = trie.match("a.b")
    assert len(result) == 2
    assert result[0] is first
    assert result[1] is conn
    only_connections = core.trie.TopicTrie()
    others = [Connection() for _ in range(3)]
    for index, topic_filter in enumerate(["#", "a.#", "a.+", "a.b"]):
        only_connections.add(topic_filter, others[index % 3])
    assert only_connections.match("a.b") == (others[0], others[1], others[2])


def test_unhashable_value_is_a_type_error(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    with pytest.raises(TypeError):
        trie.add("a", [1])
    with pytest.raises(TypeError):
        trie.discard("a", {})
    assert len(trie) == 0
    assert trie.match("a") == ()


def test_discard(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    trie.add("a.+", 1)
    trie.add("a.+", 2)
    trie.add("a.#", 1)
    generation = trie.generation
    assert trie.discard("a.b", 1) is False  # absent filter
    assert trie.discard("a.+", 3) is False  # absent value
    assert trie.discard("x.y.z", 1) is False
    assert trie.discard("#", 1) is False
    assert trie.generation == generation
    assert len(trie) == 3
    assert trie.discard("a.+", 1) is True
    assert len(trie) == 2
    assert trie.generation == generation + 1
    assert sorted(trie.match("a.b")) == [1, 2]  # 1 still comes through 'a.#'
    assert trie.discard("a.#", 1) is True
    assert trie.match("a.b") == (2,)
    assert trie.discard("a.#", 1) is False


def test_discarding_everything_prunes_the_trie(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    filters = ["a.b.c", "a.b.+", "a.+.c", "a.#", "+.b.#", "#", "$SYS.#", "$SYS.x", "a.b.c.d.e"]
    for index, topic_filter in enumerate(filters):
        trie.add(topic_filter, index)
        trie.add(topic_filter, "shared")
    topics = ["a", "a.b", "a.b.c", "a.x.c", "z.b.q", "$SYS.x", "a.b.c.d.e", "q"]
    assert all(trie.match(topic) for topic in topics)
    for index, topic_filter in enumerate(reversed(filters)):
        assert trie.discard(topic_filter, len(filters) - 1 - index) is True
        assert trie.discard(topic_filter, "shared") is True
    assert len(trie) == 0
    assert all(trie.match(topic) == () for topic in topics)
    # The pruned paths work again from scratch.
    trie.add("a.b.c", "again")
    assert trie.match("a.b.c") == ("again",)
    assert trie.match("a.b") == ()
    assert trie.discard("a.b.c", "again") is True
    assert trie.match("a.b.c") == ()


def test_discarding_a_leaf_keeps_its_siblings(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    trie.add("a.b.c", 1)
    trie.add("a.b", 2)
    trie.add("a.+.c", 3)
    assert trie.discard("a.b.c", 1) is True
    assert trie.match("a.b") == (2,)
    assert trie.match("a.b.c") == (3,)


@pytest.mark.parametrize("sibling", ["x.+", "x.#", "x", "x.y.z"])
def test_pruning_stops_at_a_node_still_in_use(core: SimpleNamespace, sibling: str) -> None:
    trie = core.trie.TopicTrie()
    trie.add(sibling, "kept")
    trie.add("x.gone", "gone")
    assert trie.discard("x.gone", "gone") is True
    probe = {"x.+": "x.q", "x.#": "x.q", "x": "x", "x.y.z": "x.y.z"}[sibling]
    assert trie.match(probe) == ("kept",)


def test_discarding_an_inner_filter_keeps_the_filters_below_it(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    trie.add("a.b", 1)
    trie.add("a.b.c", 2)
    trie.add("a.+", 3)
    trie.add("a.+.c", 4)
    trie.add("a.#", 5)
    trie.add("a.b.#", 6)
    assert trie.discard("a.b", 1) is True
    assert trie.discard("a.+", 3) is True
    assert trie.discard("a.#", 5) is True
    assert sorted(trie.match("a.b.c")) == [2, 4, 6]
    assert trie.match("a.b") == (6,)


def test_cache_is_invalidated_on_every_change(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    assert trie.match("a.b") == ()
    trie.add("a.b", 1)
    assert trie.match("a.b") == (1,)
    trie.add("#", 2)
    assert sorted(trie.match("a.b")) == [1, 2]
    trie.discard("a.b", 1)
    assert trie.match("a.b") == (2,)
    trie.discard("#", 2)
    assert trie.match("a.b") == ()


@pytest.mark.parametrize("cache_size", [0, 1, 2, 3])
def test_small_caches_stay_correct(core: SimpleNamespace, cache_size: int) -> None:
    trie = core.trie.TopicTrie(cache_size=cache_size)
    trie.add("t.+", "all")
    for index in range(0, 50, 5):
        trie.add(f"t.{index}", index)
    for _ in range(3):
        for index in range(50):
            expected = {"all", index} if index % 5 == 0 else {"all"}
            assert set(trie.match(f"t.{index}")) == expected
    trie.add("t.7", 7)
    assert set(trie.match("t.7")) == {"all", 7}


def test_dollar_topics_are_not_reached_by_leading_wildcards(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    trie.add("#", "hash")
    trie.add("+.x", "plus")
    trie.add("+.#", "plus-hash")
    trie.add("$SYS.#", "sys")
    trie.add("$SYS.x", "sys-x")
    trie.add("$SYS.+", "sys-plus")
    assert sorted(trie.match("$SYS.x")) == ["sys", "sys-plus", "sys-x"]
    assert trie.match("$SYS") == ("sys",)
    assert trie.match("$OTHER.x") == ()
    assert sorted(trie.match("a.x")) == ["hash", "plus", "plus-hash"]
    trie.add("a.#", "deep")
    assert "deep" in trie.match("a.$x")  # '$' only matters at the first level


def test_invalid_filters_and_topics(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    with pytest.raises(InvalidTopic) as info:
        trie.add("a+", 1)
    assert str(info.value) == "invalid topic filter 'a+': wildcard '+' must be a whole level"
    with pytest.raises(InvalidTopic, match="level 2 is empty"):
        trie.discard("a..b", 1)
    with pytest.raises(InvalidTopic) as info:
        trie.match("a.+")
    assert str(info.value) == (
        "invalid topic name 'a.+': wildcard '+' is not allowed in a topic name"
    )
    with pytest.raises(InvalidTopic, match="must not be empty"):
        trie.match("")
    with pytest.raises(TypeError, match=r"^topic name must be str, not bytes$"):
        trie.match(b"a")
    with pytest.raises(TypeError, match=r"^topic filter must be str, not int$"):
        trie.add(3, 1)
    assert len(trie) == 0
    assert trie.generation == 0


def test_custom_limits(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie(max_bytes=8, max_levels=2)
    trie.add("a.+", 1)
    with pytest.raises(InvalidTopic, match="has 3 levels, over the limit of 2"):
        trie.add("a.b.#", 1)
    with pytest.raises(InvalidTopic, match="is 9 UTF-8 bytes, over the limit of 8"):
        trie.match("a.bbbbbbb")
    big = core.trie.TopicTrie(max_bytes=1000, max_levels=40)
    deep = ".".join(["level"] * 40)
    big.add(deep, 1)
    assert big.match(deep) == (1,)


def test_default_cache_size_is_exported(core: SimpleNamespace) -> None:
    assert core.trie.DEFAULT_CACHE_SIZE == 4096


def test_limits_are_checked_in_the_constructor(core: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match=r"^max_bytes must be at least 1, not 0$"):
        core.trie.TopicTrie(max_bytes=0)
    with pytest.raises(ValueError, match=r"^max_levels must be at least 1, not -1$"):
        core.trie.TopicTrie(max_levels=-1)
    with pytest.raises(TypeError):
        core.trie.TopicTrie(cache_size=1.5)
    huge = core.trie.TopicTrie(cache_size=2**70, max_bytes=2**70, max_levels=2**70)
    huge.add("a.#", 1)
    assert huge.match("a." + "b." * 100 + "c") == (1,)
    off = core.trie.TopicTrie(cache_size=-5)
    off.add("a", 1)
    assert off.match("a") == (1,)


def test_plain_and_queue_values_are_kept_apart(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    assert trie.add("a.+", "p")
    assert trie.add("a.+", "q", queue=True)
    assert trie.add("a.#", "q", queue=True)
    assert trie.add("a.b", "q")  # the same value as plain: a separate pair
    assert not trie.add("a.+", "q", queue=True)
    assert len(trie) == 4
    # Literal children are walked before '+' ones.
    assert trie.match_split("a.b") == (("q", "p"), ("q",))
    assert trie.match("a.b") == ("q", "p")
    assert trie.match_split("a.c") == (("p",), ("q",))
    assert trie.match("a.c") == ("p", "q")
    assert not trie.discard("a.+", "q")  # the plain pair was never there
    assert trie.discard("a.+", "q", queue=True)
    assert trie.match_split("a.c") == (("p",), ("q",))
    assert trie.discard("a.#", "q", queue=True)
    assert trie.match_split("a.c") == (("p",), ())


def test_a_change_forgets_only_the_topics_it_affects(core: SimpleNamespace) -> None:
    trie = core.trie.TopicTrie()
    trie.add("a.b", 1)
    first = trie.match("a.b")
    trie.match("x.y")
    trie.add("x.#", 2)
    # The same tuple: the entry of a.b stayed in the cache, x.y's was replaced.
    assert trie.match("a.b") is first
    assert trie.match("x.y") == (2,)
    trie.add("+.b", 3, queue=True)
    assert trie.match_split("a.b") == ((1,), (3,))
    trie.discard("+.b", 3, queue=True)
    assert trie.match("a.b") == (1,)
