# cython: language_level=3, annotation_typing=False
"""Compiled access rights, compiled twin of ``eventbus._rights``.

The rules compile into a level trie of ``cdef`` nodes carrying the OR of the bits of the
filters ending there. The bits stay Python objects and are combined with the twin's
operators in the twin's order, so any int-like rights (an ``IntFlag`` too) give the same
masks; only the cached publish check reads a plain int in C.
"""

from cpython.dict cimport PyDict_GetItemWithError
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

from ._grammar cimport _covers, _is_broker, _split, _wildcard

from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS

__all__ = ["ADMIN", "PUBLISH", "SUBSCRIBE", "RightsTable"]

PUBLISH = 1
SUBSCRIBE = 2
ADMIN = 4

cdef object _PUBLISH = PUBLISH
cdef object _SUBSCRIBE = SUBSCRIBE
cdef object _ZERO = 0
cdef Py_ssize_t _CACHE_SIZE = 1024

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object d)

# Unpacking a rule must fail exactly as the twin's ``for topic_filter, bits in rules``
# does, and Cython words those errors differently; anything but a pair tuple is unpacked
# by the interpreter.
_namespace = {}
exec(
    "def unpack(rule):\n    topic_filter, bits = rule\n    return topic_filter, bits\n",
    _namespace,
)
cdef object _unpack = _namespace.pop("unpack")
del _namespace


cdef class _Node:
    cdef dict children     # literal level -> _Node, None until the first
    cdef _Node plus
    cdef object mask       # the OR of the bits of the filters ending here
    cdef object hash_mask  # ... and of those ending in '#' here

    def __cinit__(self):
        self.mask = _ZERO
        self.hash_mask = _ZERO


cdef class _Recent:
    """A dict that keeps its ``_CACHE_SIZE`` latest insertions."""

    cdef dict items
    cdef list order        # ``order[head:]`` are the keys, oldest first
    cdef Py_ssize_t head

    def __cinit__(self):
        self.items = {}
        self.order = []

    cdef int put(self, object key, object value) except -1:
        cdef object oldest
        if PyDict_GET_SIZE(self.items) >= _CACHE_SIZE:
            oldest = self.order[self.head]
            self.order[self.head] = None
            self.head += 1
            if 2 * self.head >= PyList_GET_SIZE(self.order):
                del self.order[: self.head]
                self.head = 0
            del self.items[oldest]
        self.items[key] = value
        self.order.append(key)
        return 0


cdef object _walk(_Node node, list levels, Py_ssize_t index):
    cdef PyObject* child
    bits = node.hash_mask
    if index == PyList_GET_SIZE(levels):
        return bits | node.mask
    if node.children is not None:
        child = PyDict_GetItemWithError(node.children, <object>PyList_GET_ITEM(levels, index))
        if child is not NULL:
            bits |= _walk(<_Node>child, levels, index + 1)
    if node.plus is not None:
        bits |= _walk(node.plus, levels, index + 1)
    return bits


cdef class RightsTable:
    """The topic rights of one principal: ``(filter, bits)`` allow rules, default deny."""

    cdef _Node _root
    cdef object _max_bytes
    cdef object _max_levels
    cdef _Recent _pub_cache
    cdef _Recent _sub_cache
    cdef tuple _rules
    # ``(levels, bits)`` per rule: covers is checked on levels validated under the table's
    # own limits.
    cdef tuple _rule_levels

    def __cinit__(self, *args, **kwargs):
        self._root = _Node.__new__(_Node)
        self._pub_cache = _Recent.__new__(_Recent)
        self._sub_cache = _Recent.__new__(_Recent)
        self._rules = ()
        self._rule_levels = ()

    def __init__(self, rules, *, max_bytes=DEFAULT_MAX_BYTES, max_levels=DEFAULT_MAX_LEVELS):
        cdef _Node node
        cdef _Node child
        cdef list levels
        cdef str level
        cdef Py_UCS4 wild
        cdef PyObject* found
        cdef Py_ssize_t index
        cdef bint ends_in_hash
        self._root = _Node.__new__(_Node)
        self._max_bytes = max_bytes
        self._max_levels = max_levels
        self._pub_cache = _Recent.__new__(_Recent)
        self._sub_cache = _Recent.__new__(_Recent)
        compiled = []
        rule_levels = []
        for rule in rules:
            if type(rule) is tuple and PyTuple_GET_SIZE(rule) == 2:
                topic_filter = <object>PyTuple_GET_ITEM(rule, 0)
                bits = <object>PyTuple_GET_ITEM(rule, 1)
            else:
                topic_filter, bits = _unpack(rule)
            node = self._root
            levels = _split(topic_filter, True, max_bytes, max_levels)
            ends_in_hash = False
            for index in range(PyList_GET_SIZE(levels)):
                level = <str>PyList_GET_ITEM(levels, index)
                wild = _wildcard(level)
                if wild == c"#":
                    node.hash_mask |= bits
                    ends_in_hash = True
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
            if not ends_in_hash:
                node.mask |= bits
            compiled.append((topic_filter, bits))
            rule_levels.append((levels, bits))
        self._rules = tuple(compiled)
        self._rule_levels = tuple(rule_levels)

    @property
    def rules(self):
        """The allow rules, in the order given."""
        return self._rules

    cpdef mask(self, topic):
        """The OR of the bits of every rule whose filter matches ``topic`` (validated)."""
        cdef PyObject* cached = PyDict_GetItemWithError(self._pub_cache.items, topic)
        if cached is not NULL and <object>cached is not None:
            return <object>cached
        cdef list levels = _split(topic, False, self._max_bytes, self._max_levels)
        cdef str first = <str>PyList_GET_ITEM(levels, 0)
        cdef _Node root = self._root
        cdef PyObject* child = NULL
        if _is_broker(first):
            if root.children is not None:
                child = PyDict_GetItemWithError(root.children, first)
            bits = _walk(<_Node>child, levels, 1) if child is not NULL else 0
        else:
            bits = _walk(root, levels, 0)
        self._pub_cache.put(topic, bits)
        return bits

    def may_publish(self, topic):
        """Whether some publish rule matches ``topic``."""
        cdef int overflow = 0
        cdef long long value
        bits = self.mask(topic)
        if type(bits) is int:
            value = PyLong_AsLongLongAndOverflow(bits, &overflow)
            if not overflow:
                return (value & 1) != 0
        return bool(bits & _PUBLISH)

    def may_subscribe(self, topic_filter):
        """Whether some subscribe rule covers every topic ``topic_filter`` can match."""
        cdef PyObject* cached = PyDict_GetItemWithError(self._sub_cache.items, topic_filter)
        if cached is not NULL and <object>cached is not None:
            return <object>cached
        cdef list levels = _split(topic_filter, True, self._max_bytes, self._max_levels)
        cdef tuple rule
        allowed = False
        for rule in self._rule_levels:
            if <object>PyTuple_GET_ITEM(rule, 1) & _SUBSCRIBE and _covers(
                <list>PyTuple_GET_ITEM(rule, 0), levels
            ):
                allowed = True
                break
        self._sub_cache.put(topic_filter, allowed)
        return allowed
