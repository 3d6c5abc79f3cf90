# The layout of the frame splitter (see _framing.pyx).

cdef class FrameSplitter:
    cdef bytearray _buffer      # bytes received that do not yet make a whole frame
    cdef object _max_frame      # compared as Python compares it: any int-like limit
