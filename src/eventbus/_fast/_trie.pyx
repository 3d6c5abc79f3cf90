# cython: language_level=3, annotation_typing=False
"""Subscription trie, compiled twin of ``eventbus._trie``.

The same structure as the twin (literal children by dict, one ``+`` child, the values of
filters ending in ``#`` kept where the ``#`` stands) in ``cdef`` classes, with dicts created
only when a node first needs them: most nodes are leaves or plain links. A match collects
the value dicts it reaches and builds its tuple straight from the only one when there is a
single source, the common case; several are merged in the twin's order.
"""

from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_Update
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport Py_TYPE, PyObject, PyObject_Hash, richcmpfunc
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM

from ._grammar cimport _is_broker, _split, _wildcard

from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS

__all__ = ["TopicTrie"]

DEFAULT_CACHE_SIZE = 4096

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object d)
    const Py_ssize_t PY_SSIZE_T_MAX

# Evicted slots at the front of the insertion-order list are dropped in one go once they
# are at least this many and half the list, so each eviction stays O(1) amortised.
cdef Py_ssize_t _COMPACT_AFTER = 64


cdef inline bint _filled(dict d) noexcept:
    return d is not None and PyDict_GET_SIZE(d) != 0


cdef class _Node:
    cdef dict children      # literal level -> _Node, None until the first
    cdef _Node plus
    cdef dict values        # the values of filters ending here (an ordered set)
    cdef dict hash_values   # the values of filters ending in '#' here
    # ``tuple(values)`` and ``tuple(hash_values)``, made by the first match that has this
    # node as its only source and dropped when the dict changes: a repeated miss then costs
    # no tuple and touches neither the dict nor the values.
    cdef tuple values_tuple
    cdef tuple hash_tuple

    cdef bint is_empty(self) noexcept:
        return not (
            _filled(self.children)
            or self.plus is not None
            or _filled(self.values)
            or _filled(self.hash_values)
        )

    cdef tuple as_tuple(self, bint hashes):
        if hashes:
            if self.hash_tuple is None:
                self.hash_tuple = _keys(self.hash_values)
            return self.hash_tuple
        if self.values_tuple is None:
            self.values_tuple = _keys(self.values)
        return self.values_tuple


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
    bint hashes[MAX_SOURCES]        # the node's hash_values, else its values


cdef inline void _note(Sources* sources, _Node node, bint hashes) noexcept:
    if sources.count < MAX_SOURCES:
        sources.nodes[sources.count] = <PyObject*>node
        sources.hashes[sources.count] = hashes
    sources.count += 1


cdef int _collect(_Node node, list levels, Py_ssize_t index, Sources* sources) except -1:
    """Note the value sets of the filters under ``node`` that match ``levels[index:]``."""
    cdef PyObject* child
    if _filled(node.hash_values):
        _note(sources, node, True)
    if index == PyList_GET_SIZE(levels):
        if _filled(node.values):
            _note(sources, node, False)
        return 0
    if node.children is not None:
        child = PyDict_GetItemWithError(node.children, <object>PyList_GET_ITEM(levels, index))
        if child is not NULL:
            _collect(<_Node>child, levels, index + 1, sources)
    if node.plus is not None:
        _collect(node.plus, levels, index + 1, sources)
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
        values = (<_Node>sources.nodes[index]).as_tuple(sources.hashes[index])
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


cdef int _collect_all(_Node node, list levels, Py_ssize_t index, list found) except -1:
    """:func:`_collect` for many sources: append the value dicts themselves to ``found``."""
    cdef PyObject* child
    if _filled(node.hash_values):
        found.append(node.hash_values)
    if index == PyList_GET_SIZE(levels):
        if _filled(node.values):
            found.append(node.values)
        return 0
    if node.children is not None:
        child = PyDict_GetItemWithError(node.children, <object>PyList_GET_ITEM(levels, index))
        if child is not NULL:
            _collect_all(<_Node>child, levels, index + 1, found)
    if node.plus is not None:
        _collect_all(node.plus, levels, index + 1, found)
    return 0


cdef int _remove(_Node node, bint hashes, object value) except -1:
    """1 if ``value`` was in the node's (hash) values and is removed, else 0."""
    cdef dict target = node.hash_values if hashes else node.values
    if target is None:
        # The twin tests membership in an empty dict, which hashes the value (and fails
        # for an unhashable one); do the same.
        PyObject_Hash(value)
        return 0
    if value not in target:
        return 0
    if hashes:
        node.hash_tuple = None
    else:
        node.values_tuple = None
    del target[value]
    return 1


cdef int _discard(_Node node, list levels, Py_ssize_t index, object value) except -1:
    """Remove ``value`` under the filter ``levels[index:]``; prune the nodes it empties."""
    cdef str level
    cdef Py_UCS4 wild
    cdef PyObject* found
    cdef _Node child
    cdef int removed
    if index == PyList_GET_SIZE(levels):
        return _remove(node, False, value)
    level = <str>PyList_GET_ITEM(levels, index)
    wild = _wildcard(level)
    if wild == c"#":
        return _remove(node, True, value)
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
    removed = _discard(child, levels, index + 1, value)
    if removed and child.is_empty():
        if wild == c"+":
            node.plus = None
        else:
            del node.children[level]
    return removed


cdef class TopicTrie:
    """Maps topic filters to values; ``match(topic)`` gives the values whose filters match.

    Each ``(filter, value)`` pair is stored once. Values may be any hashable objects.
    ``cache_size`` bounds the match cache (oldest entries go first); 0 disables it.
    """

    cdef _Node _root
    cdef dict _cache
    # The cached topics in insertion order: ``_order[_head:]`` are the keys of ``_cache``.
    cdef list _order
    cdef Py_ssize_t _head
    cdef object _cache_size
    # When ``cache_size`` is an int, the bound in C (clamped; 0 means no cache) ...
    cdef Py_ssize_t _capacity
    # ... else compared as Python compares it, on each miss.
    cdef bint _capacity_is_c
    cdef Py_ssize_t _count
    cdef unsigned long long _generation
    cdef object _max_bytes
    cdef object _max_levels

    def __cinit__(self, *args, **kwargs):
        self._root = _Node.__new__(_Node)
        self._cache = {}
        self._order = []

    def __init__(
        self,
        *,
        cache_size=DEFAULT_CACHE_SIZE,
        max_bytes=DEFAULT_MAX_BYTES,
        max_levels=DEFAULT_MAX_LEVELS,
    ):
        self._root = _Node.__new__(_Node)
        self._cache = {}
        self._order = []
        self._head = 0
        self._cache_size = cache_size
        self._capacity_is_c = type(cache_size) is int
        if self._capacity_is_c:
            if cache_size <= 0:
                self._capacity = 0
            elif cache_size >= PY_SSIZE_T_MAX:
                self._capacity = PY_SSIZE_T_MAX
            else:
                self._capacity = cache_size
        self._count = 0
        self._generation = 0
        self._max_bytes = max_bytes
        self._max_levels = max_levels

    def __len__(self):
        return self._count

    @property
    def generation(self):
        """Increases on every change, so callers can cache results of their own."""
        return self._generation

    def add(self, topic_filter, value):
        """Add ``value`` under ``topic_filter``; False if that pair was already there."""
        cdef list levels = _split(topic_filter, True, self._max_bytes, self._max_levels)
        cdef _Node node = self._root
        cdef _Node child
        cdef dict target = None
        cdef bint hashes = False
        cdef str level
        cdef Py_UCS4 wild
        cdef PyObject* found
        cdef Py_ssize_t index
        for index in range(PyList_GET_SIZE(levels)):
            level = <str>PyList_GET_ITEM(levels, index)
            wild = _wildcard(level)
            if wild == c"#":
                if node.hash_values is None:
                    node.hash_values = {}
                target = node.hash_values
                hashes = True
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
        if target is None:
            if node.values is None:
                node.values = {}
            target = node.values
        if value in target:
            return False
        if hashes:
            node.hash_tuple = None
        else:
            node.values_tuple = None
        target[value] = None
        self._changed(1)
        return True

    def discard(self, topic_filter, value):
        """Remove ``value`` from ``topic_filter``; False if that pair was not there."""
        cdef list levels = _split(topic_filter, True, self._max_bytes, self._max_levels)
        if not _discard(self._root, levels, 0, value):
            return False
        self._changed(-1)
        return True

    def match(self, topic):
        """The distinct values whose filters match ``topic`` (validated), each once."""
        cdef PyObject* cached = PyDict_GetItemWithError(self._cache, topic)
        cdef _Node node
        if cached is not NULL:
            return <object>cached
        cdef list levels = _split(topic, False, self._max_bytes, self._max_levels)
        cdef Sources sources
        cdef str first = <str>PyList_GET_ITEM(levels, 0)
        cdef _Node root = self._root
        cdef _Node start = root
        cdef Py_ssize_t offset = 0
        cdef PyObject* child
        cdef Py_ssize_t index
        cdef list found
        cdef dict merged
        cdef tuple result
        sources.count = 0
        if _is_broker(first):
            # Wildcards at the first level never reach broker ($) topics.
            start = None
            offset = 1
            if root.children is not None:
                child = PyDict_GetItemWithError(root.children, first)
                if child is not NULL:
                    start = <_Node>child
        if start is not None:
            _collect(start, levels, offset, &sources)
        if sources.count == 0:
            result = ()
        elif sources.count == 1:
            result = (<_Node>sources.nodes[0]).as_tuple(sources.hashes[0])
        else:
            result = _by_identity(&sources) if sources.count <= MAX_SOURCES else None
            if result is None:
                # Merging may run __eq__ of the values: hold the dicts first.
                found = []
                if sources.count <= MAX_SOURCES:
                    for index in range(sources.count):
                        node = <_Node>sources.nodes[index]
                        found.append(node.hash_values if sources.hashes[index] else node.values)
                else:
                    _collect_all(start, levels, offset, found)
                merged = {}
                for index in range(PyList_GET_SIZE(found)):
                    PyDict_Update(merged, <object>PyList_GET_ITEM(found, index))
                result = _keys(merged)
        self._remember(topic, result)
        return result

    cdef int _remember(self, object topic, tuple result) except -1:
        cdef object size
        if self._capacity_is_c:
            if self._capacity == 0:
                return 0
            if PyDict_GET_SIZE(self._cache) >= self._capacity:
                self._evict()
        else:
            size = self._cache_size
            if not size > 0:
                return 0
            if len(self._cache) >= size:
                self._evict()
        self._cache[topic] = result
        self._order.append(topic)
        return 0

    cdef int _evict(self) except -1:
        cdef list order = self._order
        cdef object oldest
        if self._head >= PyList_GET_SIZE(order):
            raise IndexError("pop from an empty deque")
        oldest = order[self._head]
        order[self._head] = None
        self._head += 1
        if self._head >= _COMPACT_AFTER and 2 * self._head >= PyList_GET_SIZE(order):
            del order[: self._head]
            self._head = 0
        del self._cache[oldest]
        return 0

    cdef int _changed(self, Py_ssize_t delta) except -1:
        self._count += delta
        self._generation += 1
        if PyList_GET_SIZE(self._order):
            self._cache.clear()
            self._order = []
            self._head = 0
        return 0
