# The layout of the trie's cdef classes (see _trie.pyx).

from ._cache cimport FifoCache

# Which of a node's four value sets: plain or queue, ending here or ending in '#' here.
cdef enum Kind:
    PLAIN = 0
    PLAIN_HASH = 1
    QUEUE = 2
    QUEUE_HASH = 3


cdef class _Node:
    cdef dict children      # literal level -> _Node, None until the first
    cdef _Node plus
    # The value sets (ordered: dict keys), each None until its first value.
    cdef dict values
    cdef dict hash_values
    cdef dict queue
    cdef dict hash_queue
    # ``tuple()`` of each set, made by the first match that has it as its only source and
    # dropped when the set changes: a repeated miss then builds no tuple.
    cdef tuple values_tuple
    cdef tuple hash_values_tuple
    cdef tuple queue_tuple
    cdef tuple hash_queue_tuple

    cdef bint is_empty(self) noexcept
    cdef dict set_of(self, Kind kind)
    cdef dict make_set(self, Kind kind)
    cdef tuple as_tuple(self, Kind kind)
    cdef void changed(self, Kind kind) noexcept


cdef class TopicTrie:
    cdef _Node _root
    # topic -> (plain, queue, topic levels); the levels let a change find what it affects.
    cdef FifoCache _cache
    cdef Py_ssize_t _count
    cdef unsigned long long _generation
    cdef Py_ssize_t _max_bytes
    cdef Py_ssize_t _max_levels

    cdef tuple _lookup(self, object topic)
    cdef int _changed(self, list flevels, Py_ssize_t delta) except -1
