# The layout of the rights table's cdef classes (see _rights.pyx).

from ._cache cimport FifoCache


cdef class _Node:
    cdef dict children          # literal level -> _Node, None until the first
    cdef _Node plus
    cdef unsigned int mask      # the OR of the bits of the filters ending here
    cdef unsigned int hash_mask # ... and of those ending in '#' here


cdef class RightsTable:
    cdef _Node _root
    cdef Py_ssize_t _max_bytes
    cdef Py_ssize_t _max_levels
    cdef FifoCache _pub_cache   # topic -> mask (an int)
    cdef FifoCache _sub_cache   # filter -> bool
    cdef tuple _rules
    # ``(levels, bits)`` per rule: covers is checked on levels validated under the table's
    # own limits.
    cdef tuple _rule_levels

    cdef unsigned int _mask(self, object topic) except? 0xFFFFFFFF
