# The bounded result cache shared by the trie and the rights table (see _cache.pyx).

cdef class FifoCache:
    # key -> value; owners look entries up with PyDict_GetItemWithError on it directly.
    cdef dict items
    # The keys in insertion order: ``order[head:]``, oldest first, so evicting is O(1).
    cdef list order
    cdef Py_ssize_t head
    # Set by drop(): ``order`` may name dropped keys, and is rebuilt before the next put.
    cdef bint stale
    cdef Py_ssize_t capacity    # 0: nothing is kept

    cdef int put(self, object key, object value) except -1
    cdef int drop(self, object key) except -1
    cdef list entries(self)


cdef Py_ssize_t capacity(object value) except -1
