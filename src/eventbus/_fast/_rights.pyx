# cython: language_level=3, annotation_typing=False
"""Compiled access rights, compiled twin of ``eventbus._rights``.

The rules compile into a level trie of ``cdef`` nodes carrying the OR of the bits of the
filters ending there. The constructor checks each rule's bits once, so the walk and the
caches combine plain C integers; the answers leave as Python ints.
"""

from cpython.dict cimport PyDict_GetItemWithError
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsUnsignedLong
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM

from ._cache cimport FifoCache
from ._grammar cimport _covers, _is_broker, _limit, _split_c, _wildcard

from operator import index

from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS

__all__ = ["ADMIN", "PUBLISH", "SUBSCRIBE", "RightsTable"]

PUBLISH = 1
SUBSCRIBE = 2
ADMIN = 4

cdef enum:
    C_PUBLISH = 1
    C_SUBSCRIBE = 2
    CACHE_SIZE = 1024
    # Rights are small bit sets; the bound keeps every mask inside an unsigned int.
    MAX_BITS = 0x7FFFFFFF


cdef unsigned int _bits(object value) except? 0xFFFFFFFF:
    cdef object bits = index(value)
    if not 0 <= bits <= MAX_BITS:
        raise ValueError(f"rights bits must be between 0 and {MAX_BITS}, not {bits}")
    return <unsigned int>bits


cdef class _Node:
    pass


cdef unsigned int _walk(_Node node, list levels, Py_ssize_t index) noexcept:
    cdef PyObject* child
    cdef unsigned int bits = node.hash_mask
    if index == PyList_GET_SIZE(levels):
        return bits | node.mask
    if node.children is not None:
        # Levels and node keys are exact str, whose hash and compare cannot fail.
        child = PyDict_GetItemWithError(node.children, <object>PyList_GET_ITEM(levels, index))
        if child is not NULL:
            bits |= _walk(<_Node>child, levels, index + 1)
    if node.plus is not None:
        bits |= _walk(node.plus, levels, index + 1)
    return bits


cdef class RightsTable:
    """The topic rights of one principal: ``(filter, bits)`` allow rules, default deny.

    Each rule is a pair; its bits an int from 0 to 2**31 - 1 (an ``IntFlag`` too); the
    answers are plain ints. The limits are ints of at least 1, checked here.
    """

    def __cinit__(self):
        self._root = _Node.__new__(_Node)
        self._pub_cache = FifoCache.__new__(FifoCache)
        self._sub_cache = FifoCache.__new__(FifoCache)
        self._pub_cache.capacity = CACHE_SIZE
        self._sub_cache.capacity = CACHE_SIZE
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
        cdef unsigned int bits
        self._max_bytes = _limit("max_bytes", max_bytes)
        self._max_levels = _limit("max_levels", max_levels)
        compiled = []
        rule_levels = []
        for rule in rules:
            topic_filter, given = rule
            bits = _bits(given)
            node = self._root
            levels = _split_c(topic_filter, True, self._max_bytes, self._max_levels)
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
            compiled.append((topic_filter, given))
            rule_levels.append((levels, bits))
        self._rules = tuple(compiled)
        self._rule_levels = tuple(rule_levels)

    @property
    def rules(self):
        """The allow rules, in the order given."""
        return self._rules

    def mask(self, topic):
        """The OR of the bits of every rule whose filter matches ``topic`` (validated)."""
        return self._mask(topic)

    cdef unsigned int _mask(self, object topic) except? 0xFFFFFFFF:
        cdef PyObject* cached = PyDict_GetItemWithError(self._pub_cache.items, topic)
        if cached is not NULL:
            return PyLong_AsUnsignedLong(<object>cached)
        cdef list levels = _split_c(topic, False, self._max_bytes, self._max_levels)
        cdef str first = <str>PyList_GET_ITEM(levels, 0)
        cdef _Node root = self._root
        cdef PyObject* child = NULL
        cdef unsigned int bits
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
        return (self._mask(topic) & C_PUBLISH) != 0

    def may_subscribe(self, topic_filter):
        """Whether some subscribe rule covers every topic ``topic_filter`` can match."""
        cdef PyObject* cached = PyDict_GetItemWithError(self._sub_cache.items, topic_filter)
        if cached is not NULL:
            return <object>cached
        cdef list levels = _split_c(topic_filter, True, self._max_bytes, self._max_levels)
        cdef tuple rule
        cdef bint allowed = False
        for rule in self._rule_levels:
            if (<unsigned int><object>PyTuple_GET_ITEM(rule, 1)) & C_SUBSCRIBE and _covers(
                <list>PyTuple_GET_ITEM(rule, 0), levels
            ):
                allowed = True
                break
        self._sub_cache.put(topic_filter, allowed)
        return allowed
