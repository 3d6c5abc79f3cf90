# cython: language_level=3, annotation_typing=False
"""Topic grammar (DESIGN §2), compiled twin of ``eventbus._grammar``.

Validation is one pass over the string's code points, in C: a byte table answers for the
ordinary ASCII characters, and only the rare others take the detailed path. The pass
records the first broken rule and keeps counting UTF-8 bytes and levels, so the checks are
reported in the twin's order (size, then the first bad level, then the level count) with
the twin's messages, word for word.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport (
    Py_UNICODE_ISSPACE,
    PyUnicode_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_KIND,
    PyUnicode_READ_CHAR,
    PyUnicode_Split,
    PyUnicode_Substring,
)
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

from operator import index

from eventbus.errors import InvalidTopic

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    bint PyUnicode_IS_ASCII(object text)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LEVELS",
    "filter_covers",
    "filter_levels",
    "topic_levels",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]

cdef enum:
    DEFAULT_BYTES = 256
    DEFAULT_LEVELS = 16

DEFAULT_MAX_BYTES = DEFAULT_BYTES
DEFAULT_MAX_LEVELS = DEFAULT_LEVELS

# The defaults as C-level references, so the fixed-limit entry points skip a global lookup.
cdef object _MAX_BYTES = DEFAULT_MAX_BYTES
cdef object _MAX_LEVELS = DEFAULT_MAX_LEVELS

# The rule a scan found broken; 0 when the string is valid apart from its limits.
cdef enum Rule:
    RULE_NONE = 0
    RULE_EMPTY_LEVEL
    RULE_WILDCARD_IN_NAME
    RULE_WILDCARD_PART
    RULE_HASH_NOT_LAST
    RULE_NUL
    RULE_CONTROL
    RULE_WHITESPACE
    RULE_SURROGATE

# The scan notes where the separators are, so the levels are cut without a second pass,
# for up to this many levels (more fall back to ``str.split``).
cdef enum:
    MAX_NOTED_LEVELS = 32

ctypedef struct Scan:
    Py_ssize_t size     # UTF-8 bytes (a lone surrogate counts 3, as its code point says)
    Py_ssize_t levels
    Rule rule           # the first rule broken, in reading order
    Py_ssize_t level    # the 1-based level that breaks it
    Py_UCS4 ch          # the character that breaks it
    Py_ssize_t dots[MAX_NOTED_LEVELS]   # dots[k]: the index of the separator after level k+1

# Non-zero for an ordinary ASCII level character: neither separator, wildcard, control
# character nor whitespace. 256 entries, so a one-byte code unit needs no range check.
cdef unsigned char _ORDINARY[256]


cdef void _init_ordinary() noexcept:
    cdef uint32_t c
    for c in range(256):
        _ORDINARY[c] = 0x21 <= c < 0x7F and c != c"." and c != c"+" and c != c"#"


_init_ordinary()

ctypedef fused code_unit:
    uint8_t
    uint16_t
    Py_UCS4


cdef inline void _note(Scan* scan, Rule rule, Py_ssize_t level, uint32_t ch) noexcept:
    if scan.rule == RULE_NONE:
        scan.rule = rule
        scan.level = level
        scan.ch = <Py_UCS4>ch


cdef void _scan(const code_unit* data, Py_ssize_t n, bint is_filter, Scan* scan) noexcept:
    # The counters live in locals: stored through ``scan``, they would be written back on
    # every character, since as far as C knows the code units may alias them.
    cdef Py_ssize_t i
    cdef Py_ssize_t extra = 0       # UTF-8 bytes beyond one per code point
    cdef Py_ssize_t levels = 1
    cdef Py_ssize_t start = 0       # where the current level begins
    cdef uint32_t ch
    scan.rule = RULE_NONE
    scan.level = 0
    scan.ch = 0
    for i in range(n):
        ch = data[i]
        if code_unit is uint8_t:
            if _ORDINARY[ch]:
                continue
        elif ch < 0x80 and _ORDINARY[ch]:
            continue
        if ch < 0x80:
            if ch == c".":
                if i == start:
                    _note(scan, RULE_EMPTY_LEVEL, levels, ch)
                if levels <= MAX_NOTED_LEVELS:
                    scan.dots[levels - 1] = i
                levels += 1
                start = i + 1
            elif scan.rule != RULE_NONE:
                continue
            elif ch == c"+" or ch == c"#":
                if not is_filter:
                    _note(scan, RULE_WILDCARD_IN_NAME, levels, ch)
                elif i != start or (i + 1 < n and data[i + 1] != c"."):
                    _note(scan, RULE_WILDCARD_PART, levels, ch)
                elif ch == c"#" and i + 1 != n:
                    _note(scan, RULE_HASH_NOT_LAST, levels, ch)
            elif ch == 0:
                _note(scan, RULE_NUL, levels, ch)
            elif ch == c" ":
                _note(scan, RULE_WHITESPACE, levels, ch)
            else:
                _note(scan, RULE_CONTROL, levels, ch)
            continue
        if ch < 0x800:
            extra += 1
        elif ch < 0x10000:
            extra += 2
        else:
            extra += 3
        if scan.rule != RULE_NONE:
            continue
        if ch <= 0x9F:
            _note(scan, RULE_CONTROL, levels, ch)
        elif Py_UNICODE_ISSPACE(ch):
            _note(scan, RULE_WHITESPACE, levels, ch)
        elif 0xD800 <= ch <= 0xDFFF:
            _note(scan, RULE_SURROGATE, levels, ch)
    if start == n:
        _note(scan, RULE_EMPTY_LEVEL, levels, 0)
    scan.size = n + extra
    scan.levels = levels


cdef int _over(Py_ssize_t value, object limit) except -1:
    """``value > limit`` as Python decides it, without objects when ``limit`` is an int."""
    cdef int overflow = 0
    cdef long long bound
    # The defaults are cached small ints, so most calls stop at these identity checks.
    if limit is _MAX_BYTES:
        return value > DEFAULT_BYTES
    if limit is _MAX_LEVELS:
        return value > DEFAULT_LEVELS
    if type(limit) is int:
        bound = PyLong_AsLongLongAndOverflow(limit, &overflow)
        if overflow:
            return overflow < 0
        return value > bound
    return 1 if value > limit else 0


cdef str _rule_text(Scan* scan):
    cdef Py_UCS4 ch = scan.ch
    cdef unsigned long code = ch
    if scan.rule == RULE_EMPTY_LEVEL:
        return f"level {scan.level} is empty"
    if scan.rule == RULE_WILDCARD_IN_NAME:
        return f"wildcard {ch!r} is not allowed in a topic name"
    if scan.rule == RULE_WILDCARD_PART:
        return f"wildcard {ch!r} must be a whole level"
    if scan.rule == RULE_HASH_NOT_LAST:
        return "'#' must be the last level"
    if scan.rule == RULE_NUL:
        return f"level {scan.level}: NUL is not allowed"
    if scan.rule == RULE_CONTROL:
        return f"level {scan.level}: control character U+{code:04X} is not allowed"
    if scan.rule == RULE_WHITESPACE:
        return f"level {scan.level}: whitespace U+{code:04X} is not allowed"
    return f"level {scan.level}: lone surrogate U+{code:04X} is not valid UTF-8"


cdef object _fail(str kind, object text, str rule):
    return InvalidTopic(f"invalid {kind} {text!r}: {rule}")


cdef int _scan_text(object text, bint is_filter, Scan* scan) except -1:
    """Check the type, refuse ``""`` and scan ``text`` into ``scan``."""
    cdef Py_ssize_t n
    cdef int kind
    cdef void* data
    if not isinstance(text, str):
        raise TypeError(f"{_kind_name(is_filter)} must be str, not {type(text).__name__}")
    n = PyUnicode_GET_LENGTH(text)
    if n == 0:
        raise _fail(_kind_name(is_filter), text, "must not be empty")
    kind = PyUnicode_KIND(text)
    data = PyUnicode_DATA(text)
    if kind == 1:
        _scan(<const uint8_t*>data, n, is_filter, scan)
    elif kind == 2:
        _scan(<const uint16_t*>data, n, is_filter, scan)
    else:
        _scan(<const Py_UCS4*>data, n, is_filter, scan)
    return 0


cdef inline str _kind_name(bint is_filter):
    return "topic filter" if is_filter else "topic name"


cdef list _levels_of(object text, Scan* scan):
    if scan.levels > MAX_NOTED_LEVELS:
        return PyUnicode_Split(text, ".", -1)
    return _cut(text, PyUnicode_GET_LENGTH(text), scan)


cdef list _split(object text, bint is_filter, object max_bytes, object max_levels):
    """Validate ``text`` as a topic name or filter and return its levels."""
    cdef Scan scan
    _scan_text(text, is_filter, &scan)
    if _over(scan.size, max_bytes):
        raise _fail(
            _kind_name(is_filter),
            text,
            f"is {scan.size} UTF-8 bytes, over the limit of {max_bytes}",
        )
    if scan.rule != RULE_NONE:
        raise _fail(_kind_name(is_filter), text, _rule_text(&scan))
    if _over(scan.levels, max_levels):
        raise _fail(
            _kind_name(is_filter),
            text,
            f"has {scan.levels} levels, over the limit of {max_levels}",
        )
    return _levels_of(text, &scan)


cdef list _split_c(object text, bint is_filter, Py_ssize_t max_bytes, Py_ssize_t max_levels):
    """:func:`_split` under limits a constructor checked (see ``_limit``): no objects."""
    cdef Scan scan
    _scan_text(text, is_filter, &scan)
    if scan.size > max_bytes:
        raise _fail(
            _kind_name(is_filter),
            text,
            f"is {scan.size} UTF-8 bytes, over the limit of {max_bytes}",
        )
    if scan.rule != RULE_NONE:
        raise _fail(_kind_name(is_filter), text, _rule_text(&scan))
    if scan.levels > max_levels:
        raise _fail(
            _kind_name(is_filter),
            text,
            f"has {scan.levels} levels, over the limit of {max_levels}",
        )
    return _levels_of(text, &scan)


cdef Py_ssize_t _limit(str name, object value) except -1:
    """A constructor's topic limit as a C integer: an int of at least 1, clamped to a
    Py_ssize_t (no topic is that long, so the answers stay the same)."""
    cdef object limit = index(value)
    if limit < 1:
        raise ValueError(f"{name} must be at least 1, not {limit}")
    return PY_SSIZE_T_MAX if limit >= PY_SSIZE_T_MAX else <Py_ssize_t>limit


cdef list _cut(object text, Py_ssize_t n, Scan* scan):
    """``text.split(".")`` from the separators the scan noted."""
    cdef list levels = PyList_New(scan.levels)
    cdef Py_ssize_t index
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t end
    cdef object level
    cdef bint ascii = PyUnicode_IS_ASCII(text) and scan.levels > 1
    cdef const char* data = <const char*>PyUnicode_DATA(text)
    for index in range(scan.levels):
        end = scan.dots[index] if index < scan.levels - 1 else n
        if ascii:
            # What PyUnicode_Substring ends up doing for ASCII, without its checks.
            level = PyUnicode_New(end - start, 127)
            memcpy(PyUnicode_DATA(level), data + start, end - start)
        else:
            level = PyUnicode_Substring(text, start, end)
        Py_INCREF(level)
        PyList_SET_ITEM(levels, index, level)
        start = end + 1
    return levels


cdef bint _is_broker(str first_level) noexcept:
    """Whether a (validated, non-empty) first level names a broker ($) topic."""
    return PyUnicode_READ_CHAR(first_level, 0) == c"$"


cdef Py_UCS4 _wildcard(str level) noexcept:
    """``+`` or ``#`` when the (validated) level is that wildcard, else 0."""
    cdef Py_UCS4 ch
    if PyUnicode_GET_LENGTH(level) != 1:
        return 0
    ch = PyUnicode_READ_CHAR(level, 0)
    return ch if ch == c"+" or ch == c"#" else 0


cdef bint _matches(list flevels, list tlevels) except -1:
    cdef Py_ssize_t count = PyList_GET_SIZE(tlevels)
    cdef Py_ssize_t index
    cdef str level
    cdef Py_UCS4 wild
    # MQTT rule: a filter opening with a wildcard never matches a broker ($) topic.
    if _is_broker(<str>PyList_GET_ITEM(tlevels, 0)) and _wildcard(
        <str>PyList_GET_ITEM(flevels, 0)
    ):
        return False
    for index in range(PyList_GET_SIZE(flevels)):
        level = <str>PyList_GET_ITEM(flevels, index)
        wild = _wildcard(level)
        if wild == c"#":
            return True
        if index >= count:
            return False
        if wild != c"+" and level != <str>PyList_GET_ITEM(tlevels, index):
            return False
    return PyList_GET_SIZE(flevels) == count


cdef bint _covers(list olevels, list ilevels) except -1:
    """Whether every topic the filter ``ilevels`` matches is matched by ``olevels``."""
    cdef Py_ssize_t count = PyList_GET_SIZE(ilevels)
    cdef Py_ssize_t length = PyList_GET_SIZE(olevels)
    cdef Py_ssize_t index
    cdef str level
    cdef str sub
    cdef Py_UCS4 wild
    for index in range(length):
        level = <str>PyList_GET_ITEM(olevels, index)
        wild = _wildcard(level)
        if wild == c"#":
            # A leading '#' excludes $ topics, which a literal '$...' first level reaches.
            return index > 0 or not _is_broker(<str>PyList_GET_ITEM(ilevels, 0))
        if index >= count:
            return False
        sub = <str>PyList_GET_ITEM(ilevels, index)
        if _wildcard(sub) == c"#":
            # Inner '#' here also matches the topic that ends before it, which outer misses;
            # at the first level no such topic exists, and '+.#' matches all that '#' does.
            return (
                index == 0
                and wild == c"+"
                and length == 2
                and _wildcard(<str>PyList_GET_ITEM(olevels, 1)) == c"#"
            )
        if wild == c"+":
            if index == 0 and _is_broker(sub):
                return False
        elif level != sub:
            return False
    return length == count


def topic_levels(name, max_bytes=DEFAULT_MAX_BYTES, max_levels=DEFAULT_MAX_LEVELS):
    """Validate a topic name and return its levels."""
    return _split(name, False, max_bytes, max_levels)


def filter_levels(topic_filter, max_bytes=DEFAULT_MAX_BYTES, max_levels=DEFAULT_MAX_LEVELS):
    """Validate a topic filter and return its levels."""
    return _split(topic_filter, True, max_bytes, max_levels)


def validate_topic(name, *, max_bytes=DEFAULT_MAX_BYTES, max_levels=DEFAULT_MAX_LEVELS):
    """Raise :class:`InvalidTopic` unless ``name`` is a valid topic name (no wildcards)."""
    _split(name, False, max_bytes, max_levels)


def validate_filter(topic_filter, *, max_bytes=DEFAULT_MAX_BYTES, max_levels=DEFAULT_MAX_LEVELS):
    """Raise :class:`InvalidTopic` unless ``topic_filter`` is a valid topic filter."""
    _split(topic_filter, True, max_bytes, max_levels)


def topic_matches(topic_filter, name):
    """Whether the filter matches the topic name; both are validated first."""
    cdef list flevels = _split(topic_filter, True, _MAX_BYTES, _MAX_LEVELS)
    cdef list tlevels = _split(name, False, _MAX_BYTES, _MAX_LEVELS)
    return _matches(flevels, tlevels)


def filter_covers(outer, inner):
    """Whether every topic that ``inner`` matches is also matched by ``outer``.

    This is the subscribe check of the ACL: ``events.process.+`` is inside
    ``events.process.#``; ``events.#`` is not.
    """
    cdef list olevels = _split(outer, True, _MAX_BYTES, _MAX_LEVELS)
    cdef list ilevels = _split(inner, True, _MAX_BYTES, _MAX_LEVELS)
    return _covers(olevels, ilevels)
