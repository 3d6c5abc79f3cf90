# The grammar's C-level entry points, cimported by the trie and the rights table so that
# validating and splitting a topic costs a function-pointer call, not a Python call.

cdef list _split(object text, bint is_filter, object max_bytes, object max_levels)
cdef list _split_c(object text, bint is_filter, Py_ssize_t max_bytes, Py_ssize_t max_levels)
cdef Py_ssize_t _limit(str name, object value) except -1
cdef bint _matches(list flevels, list tlevels) except -1
cdef bint _is_broker(str first_level) noexcept
cdef Py_UCS4 _wildcard(str level) noexcept
cdef bint _covers(list olevels, list ilevels) except -1
