# The bounded result cache shared by the trie and the rights table (see _cache.pyx).

cdef class FifoCache:
    # An OrderedDict: O(1) removal of the oldest entry and of any single one. It is a dict
    # subclass, so owners look entries up with PyDict_GetItemWithError on it directly.
    cdef object items
    cdef Py_ssize_t capacity    # 0: nothing is kept

    cdef int put(self, object key, object value) except -1
    cdef int drop(self, object key) except -1
    cdef list entries(self)


cdef Py_ssize_t capacity(object value) except -1
