# The grammar's C-level entry points, cimported by the trie and the rights table so that
# validating and splitting a topic costs a function-pointer call, not a Python call.

cdef list _split(object text, bint is_filter, object max_bytes, object max_levels)
cdef bint _is_broker(str first_level) noexcept
cdef Py_UCS4 _wildcard(str level) noexcept
cdef bint _covers(list olevels, list ilevels) except -1
