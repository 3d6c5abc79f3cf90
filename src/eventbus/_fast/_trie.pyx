# cython: language_level=3, annotation_typing=False
"""Subscription trie, compiled twin of ``eventbus._trie``.

The same structure as the twin (literal children by dict, one ``+`` child, the values of
filters ending in ``#`` kept where the ``#`` stands, plain and queue values apart) in
``cdef`` classes, with dicts created only when a node first needs them: most nodes are
leaves or plain links. A match notes the value sets it reaches and builds its tuple straight
from the only one when there is a single source, the common case; several are merged in the
twin's order.
"""

from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_Update
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport Py_TYPE, PyObject, PyObject_Hash, richcmpfunc
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM

from ._cache cimport FifoCache, capacity
from ._grammar cimport _is_broker, _limit, _matches, _split_c, _wildcard

from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS

__all__ = ["TopicTrie"]

DEFAULT_CACHE_SIZE = 4096

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object d)


cdef inline bint _filled(dict d) noexcept:
    return d is not None and PyDict_GET_SIZE(d) != 0


cdef class _Node:
    cdef bint is_empty(self) noexcept:
        return not (
            _filled(self.children)
            or self.plus is not None
            or _filled(self.values)
            or _filled(self.hash_values)
            or _filled(self.queue)
            or _filled(self.hash_queue)
        )

    cdef dict set_of(self, Kind kind):
        if kind == PLAIN:
            return self.values
        if kind == PLAIN_HASH:
            return self.hash_values
        if kind == QUEUE:
            return self.queue
        return self.hash_queue

    cdef dict make_set(self, Kind kind):
        cdef dict found = self.set_of(kind)
        if found is not None:
            return found
        found = {}
        if kind == PLAIN:
            self.values = found
        elif kind == PLAIN_HASH:
            self.hash_values = found
        elif kind == QUEUE:
            self.queue = found
        else:
            self.hash_queue = found
        return found

    cdef tuple as_tuple(self, Kind kind):
        if kind == PLAIN:
            if self.values_tuple is None:
                self.values_tuple = _keys(self.values)
            return self.values_tuple
        if kind == PLAIN_HASH:
            if self.hash_values_tuple is None:
                self.hash_values_tuple = _keys(self.hash_values)
            return self.hash_values_tuple
        if kind == QUEUE:
            if self.queue_tuple is None:
                self.queue_tuple = _keys(self.queue)
            return self.queue_tuple
        if self.hash_queue_tuple is None:
            self.hash_queue_tuple = _keys(self.hash_queue)
        return self.hash_queue_tuple

    cdef void changed(self, Kind kind) noexcept:
        if kind == PLAIN:
            self.values_tuple = None
        elif kind == PLAIN_HASH:
            self.hash_values_tuple = None
        elif kind == QUEUE:
            self.queue_tuple = None
        else:
            self.hash_queue_tuple = None


cdef tuple _keys(dict d):
    """``tuple(d)`` without an iterator object."""
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t index = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef tuple result = PyTuple_New(PyDict_GET_SIZE(d))
    while PyDict_Next(d, &pos, &key, &value):
        Py_INCREF(<object>key)
        PyTuple_SET_ITEM(result, index, <object>key)
        index += 1
    return result


# How many values a match merges without a dict (see _by_identity).
cdef enum:
    MAX_MERGED = 64

# The rich comparison of ``object``: values whose type keeps it are equal only to themselves.
cdef richcmpfunc _OBJECT_COMPARE = Py_TYPE(object()).tp_richcompare

# The value sets a match reaches, in the twin's order: most matches reach one or two, so
# they are noted in C; past MAX_SOURCES only the count goes on and the walk is redone.
cdef enum:
    MAX_SOURCES = 8

ctypedef struct Sources:
    Py_ssize_t count
    PyObject* nodes[MAX_SOURCES]    # borrowed: no Python code runs until they are used
    Kind kinds[MAX_SOURCES]


cdef inline void _note(Sources* sources, _Node node, Kind kind) noexcept:
    if sources.count < MAX_SOURCES:
        sources.nodes[sources.count] = <PyObject*>node
        sources.kinds[sources.count] = kind
    sources.count += 1


cdef int _collect(
    _Node node, list levels, Py_ssize_t index, Sources* plain, Sources* queue
) except -1:
    """Note the value sets of the filters under ``node`` that match ``levels[index:]``."""
    cdef PyObject* child
    if _filled(node.hash_values):
        _note(plain, node, PLAIN_HASH)
    if _filled(node.hash_queue):
        _note(queue, node, QUEUE_HASH)
    if index == PyList_GET_SIZE(levels):
        if _filled(node.values):
            _note(plain, node, PLAIN)
        if _filled(node.queue):
            _note(queue, node, QUEUE)
        return 0
    if node.children is not None:
        child = PyDict_GetItemWithError(node.children, <object>PyList_GET_ITEM(levels, index))
        if child is not NULL:
            _collect(<_Node>child, levels, index + 1, plain, queue)
    if node.plus is not None:
        _collect(node.plus, levels, index + 1, plain, queue)
    return 0


cdef int _collect_all(
    _Node node, list levels, Py_ssize_t index, bint queue, list found
) except -1:
    """:func:`_collect` for many sources: append the value dicts of one kind to ``found``."""
    cdef PyObject* child
    cdef dict values = node.hash_queue if queue else node.hash_values
    if _filled(values):
        found.append(values)
    if index == PyList_GET_SIZE(levels):
        values = node.queue if queue else node.values
        if _filled(values):
            found.append(values)
        return 0
    if node.children is not None:
        child = PyDict_GetItemWithError(node.children, <object>PyList_GET_ITEM(levels, index))
        if child is not NULL:
            _collect_all(<_Node>child, levels, index + 1, queue, found)
    if node.plus is not None:
        _collect_all(node.plus, levels, index + 1, queue, found)
    return 0


cdef tuple _by_identity(Sources* sources):
    """The union of the noted value sets in order, when equality among them is identity.

    That is so when every value's type compares as ``object`` does (the broker's
    connections and groups do): two values are then the same dict key only if they are
    the same object, so the union needs no dict. None when some value compares otherwise,
    or there are more than MAX_MERGED.
    """
    cdef PyObject* items[MAX_MERGED]
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t kept
    cdef Py_ssize_t index
    cdef Py_ssize_t position
    cdef Py_ssize_t size
    cdef tuple values
    cdef tuple result
    cdef PyObject* item
    for index in range(sources.count):
        values = (<_Node>sources.nodes[index]).as_tuple(sources.kinds[index])
        size = PyTuple_GET_SIZE(values)
        if count + size > MAX_MERGED:
            return None
        for position in range(size):
            item = PyTuple_GET_ITEM(values, position)
            if Py_TYPE(<object>item).tp_richcompare != _OBJECT_COMPARE:
                return None
            items[count] = item
            count += 1
    # The tuples hold the items: nothing has run since they were read, and nothing runs
    # below (identity needs no call), so the borrowed pointers stay valid.
    kept = 0
    for index in range(count):
        item = items[index]
        for position in range(kept):
            if items[position] == item:
                break
        else:
            items[kept] = item
            kept += 1
    result = PyTuple_New(kept)
    for index in range(kept):
        Py_INCREF(<object>items[index])
        PyTuple_SET_ITEM(result, index, <object>items[index])
    return result


cdef tuple _union(Sources* sources, _Node start, list levels, Py_ssize_t offset, bint queue):
    """The distinct values of the noted sets, in the twin's order."""
    cdef tuple result
    cdef list found
    cdef dict merged
    cdef Py_ssize_t index
    if sources.count == 0:
        return ()
    if sources.count == 1:
        return (<_Node>sources.nodes[0]).as_tuple(sources.kinds[0])
    if sources.count <= MAX_SOURCES:
        result = _by_identity(sources)
        if result is not None:
            return result
    # Merging may run __eq__ of the values: hold the dicts first.
    found = []
    if sources.count <= MAX_SOURCES:
        for index in range(sources.count):
            found.append((<_Node>sources.nodes[index]).set_of(sources.kinds[index]))
    else:
        _collect_all(start, levels, offset, queue, found)
    merged = {}
    for index in range(PyList_GET_SIZE(found)):
        PyDict_Update(merged, <object>PyList_GET_ITEM(found, index))
    return _keys(merged)


cdef int _remove(_Node node, Kind kind, object value) except -1:
    """1 if ``value`` was in the node's set of that kind and is removed, else 0."""
    cdef dict target = node.set_of(kind)
    if target is None:
        # Values must be hashable whether or not the set exists yet.
        PyObject_Hash(value)
        return 0
    if value not in target:
        return 0
    node.changed(kind)
    del target[value]
    return 1


cdef int _discard(_Node node, list levels, Py_ssize_t index, object value, bint queue) except -1:
    """Remove ``value`` under the filter ``levels[index:]``; prune the nodes it empties."""
    cdef str level
    cdef Py_UCS4 wild
    cdef PyObject* found
    cdef _Node child
    cdef int removed
    if index == PyList_GET_SIZE(levels):
        return _remove(node, QUEUE if queue else PLAIN, value)
    level = <str>PyList_GET_ITEM(levels, index)
    wild = _wildcard(level)
    if wild == c"#":
        return _remove(node, QUEUE_HASH if queue else PLAIN_HASH, value)
    if wild == c"+":
        child = node.plus
    else:
        if node.children is None:
            return 0
        found = PyDict_GetItemWithError(node.children, level)
        if found is NULL:
            return 0
        child = <_Node>found
    if child is None:
        return 0
    removed = _discard(child, levels, index + 1, value, queue)
    if removed and child.is_empty():
        if wild == c"+":
            node.plus = None
        else:
            del node.children[level]
    return removed


cdef class TopicTrie:
    """Maps topic filters to values; ``match(topic)`` gives the values whose filters match.

    Each ``(filter, value)`` pair is stored once, as a plain or (``queue=True``) a queue
    value; the two kinds are separate sets. Values may be any hashable objects.
    ``cache_size`` bounds the match cache (oldest entries go first); 0 disables it.
    The limits are checked here: ints, the topic limits at least 1; a
    ``cache_size`` below 1 means no cache.
    """

    def __cinit__(self):
        self._root = _Node.__new__(_Node)
        self._cache = FifoCache.__new__(FifoCache)

    def __init__(
        self,
        *,
        cache_size=DEFAULT_CACHE_SIZE,
        max_bytes=DEFAULT_MAX_BYTES,
        max_levels=DEFAULT_MAX_LEVELS,
    ):
        self._max_bytes = _limit("max_bytes", max_bytes)
        self._max_levels = _limit("max_levels", max_levels)
        self._cache.capacity = capacity(cache_size)

    def __len__(self):
        return self._count

    @property
    def generation(self):
        """Increases on every change, so callers can cache results of their own."""
        return self._generation

    def add(self, topic_filter, value, *, bint queue=False):
        """Add ``value`` under ``topic_filter``; False if that pair was already there."""
        cdef list levels = _split_c(topic_filter, True, self._max_bytes, self._max_levels)
        cdef _Node node = self._root
        cdef _Node child
        cdef dict target
        cdef Kind kind = QUEUE if queue else PLAIN
        cdef str level
        cdef Py_UCS4 wild
        cdef PyObject* found
        cdef Py_ssize_t index
        for index in range(PyList_GET_SIZE(levels)):
            level = <str>PyList_GET_ITEM(levels, index)
            wild = _wildcard(level)
            if wild == c"#":
                kind = QUEUE_HASH if queue else PLAIN_HASH
                break
            if wild == c"+":
                if node.plus is None:
                    node.plus = _Node.__new__(_Node)
                node = node.plus
            else:
                if node.children is None:
                    node.children = {}
                found = PyDict_GetItemWithError(node.children, level)
                if found is NULL:
                    child = _Node.__new__(_Node)
                    node.children[level] = child
                    node = child
                else:
                    node = <_Node>found
        target = node.make_set(kind)
        if value in target:
            return False
        node.changed(kind)
        target[value] = None
        self._changed(levels, 1)
        return True

    def discard(self, topic_filter, value, *, bint queue=False):
        """Remove ``value`` from ``topic_filter``; False if that pair was not there."""
        cdef list levels = _split_c(topic_filter, True, self._max_bytes, self._max_levels)
        if not _discard(self._root, levels, 0, value, queue):
            return False
        self._changed(levels, -1)
        return True

    def match(self, topic):
        """The distinct values whose filters match ``topic`` (validated), each once:
        the plain ones, then the queue values not among them."""
        cdef tuple entry = self._lookup(topic)
        cdef tuple plain = <tuple>PyTuple_GET_ITEM(entry, 0)
        cdef tuple queue = <tuple>PyTuple_GET_ITEM(entry, 1)
        if PyTuple_GET_SIZE(queue) == 0:
            return plain
        return tuple(dict.fromkeys(plain + queue))

    def match_split(self, topic):
        """``(plain, queue)``: the distinct plain and the distinct queue values whose
        filters match ``topic`` (validated), each in the order :meth:`match` gives them."""
        cdef tuple entry = self._lookup(topic)
        return (<object>PyTuple_GET_ITEM(entry, 0), <object>PyTuple_GET_ITEM(entry, 1))

    cdef tuple _lookup(self, object topic):
        """The cache entry of ``topic``, made on a miss."""
        cdef PyObject* cached = PyDict_GetItemWithError(self._cache.items, topic)
        if cached is not NULL:
            return <tuple>cached
        cdef list levels = _split_c(topic, False, self._max_bytes, self._max_levels)
        cdef Sources plain
        cdef Sources queue
        cdef str first = <str>PyList_GET_ITEM(levels, 0)
        cdef _Node root = self._root
        cdef _Node start = root
        cdef Py_ssize_t offset = 0
        cdef PyObject* child
        cdef tuple entry
        plain.count = 0
        queue.count = 0
        if _is_broker(first):
            # Wildcards at the first level never reach broker ($) topics.
            start = None
            offset = 1
            if root.children is not None:
                child = PyDict_GetItemWithError(root.children, first)
                if child is not NULL:
                    start = <_Node>child
        if start is not None:
            _collect(start, levels, offset, &plain, &queue)
        entry = (
            _union(&plain, start, levels, offset, False),
            _union(&queue, start, levels, offset, True),
            levels,
        )
        self._cache.put(topic, entry)
        return entry

    cdef int _changed(self, list flevels, Py_ssize_t delta) except -1:
        cdef tuple pair
        self._count += delta
        self._generation += 1
        if PyDict_GET_SIZE(self._cache.items) == 0:
            return 0
        # Only the cached topics the changed filter matches can have a new answer.
        for pair in self._cache.entries():
            if _matches(flevels, <list>PyTuple_GET_ITEM(<tuple>PyTuple_GET_ITEM(pair, 1), 2)):
                self._cache.drop(<object>PyTuple_GET_ITEM(pair, 0))
        return 0
