# cython: language_level=3, annotation_typing=False
"""Bounded result cache, compiled twin of ``eventbus._cache``.

The trie and the rights table keep their answers per topic here. Entries go oldest first
when the cache is full, and single entries can be dropped, so a change to the trie only
forgets the topics it affects (as nats-server's sublist patches its cache).
"""

from operator import index

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object d)
    const Py_ssize_t PY_SSIZE_T_MAX

# Evicted slots at the front of ``order`` are dropped in one go once they are at least this
# many and half the list, so each eviction stays O(1) amortised.
cdef Py_ssize_t _COMPACT_AFTER = 64


cdef class FifoCache:
    """At most ``capacity`` entries; inserting into a full cache drops the oldest."""

    def __cinit__(self):
        self.items = {}
        self.order = []

    def __len__(self):
        return PyDict_GET_SIZE(self.items)

    def __contains__(self, key):
        return key in self.items

    cdef int put(self, object key, object value) except -1:
        cdef list order
        cdef object oldest
        if self.capacity == 0:
            return 0
        if self.stale:
            # A dict keeps insertion order and drop() deleted from it: its keys are the
            # exact FIFO order, with no dropped key left for an eviction to hit.
            self.order = list(self.items)
            self.head = 0
            self.stale = False
        order = self.order
        if PyDict_GET_SIZE(self.items) >= self.capacity:
            oldest = order[self.head]
            order[self.head] = None
            self.head += 1
            if self.head >= _COMPACT_AFTER and 2 * self.head >= len(order):
                del order[: self.head]
                self.head = 0
            del self.items[oldest]
        self.items[key] = value
        order.append(key)
        return 0

    cdef int drop(self, object key) except -1:
        del self.items[key]
        self.stale = True
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
