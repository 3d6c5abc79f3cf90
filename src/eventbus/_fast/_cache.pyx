# cython: language_level=3, annotation_typing=False
"""Bounded result cache, compiled twin of ``eventbus._cache``.

The trie and the rights table keep their answers per topic here. Entries go oldest first
when the cache is full, and single entries can be dropped, so a change to the trie only
forgets the topics it affects (as nats-server's sublist patches its cache).
"""

from collections import OrderedDict
from operator import index

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object d)
    const Py_ssize_t PY_SSIZE_T_MAX


cdef class FifoCache:
    """At most ``capacity`` entries; inserting into a full cache drops the oldest."""

    def __cinit__(self):
        self.items = OrderedDict()
        self.capacity = 0

    def __len__(self):
        return PyDict_GET_SIZE(self.items)

    cdef int put(self, object key, object value) except -1:
        if self.capacity == 0:
            return 0
        if PyDict_GET_SIZE(self.items) >= self.capacity:
            self.items.popitem(False)
        self.items[key] = value
        return 0

    cdef int drop(self, object key) except -1:
        del self.items[key]
        return 0

    cdef list entries(self):
        """A snapshot of the entries, so the caller may drop some while going through."""
        return list(self.items.items())


cdef Py_ssize_t capacity(object value) except -1:
    """A constructor's ``cache_size`` as a bound: an int, below 1 meaning no cache, clamped
    to a Py_ssize_t (no cache grows that big)."""
    cdef object size = index(value)
    if size <= 0:
        return 0
    return PY_SSIZE_T_MAX if size >= PY_SSIZE_T_MAX else <Py_ssize_t>size
