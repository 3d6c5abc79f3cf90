"""Build the optional Cython fast path of eventbus.

``EVENTBUS_NO_EXTENSIONS`` set to a non-empty value other than ``"0"`` (or a non-CPython
interpreter) gives a pure-Python install; unset, empty or ``"0"`` compiles the core.
Under cibuildwheel (``CIBUILDWHEEL=1``) a wheel without its compiled core is an error, so a
failed compile fails the build instead of silently shipping the fallback.
"""

from __future__ import annotations

import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FAST_MODULES = [
    "_grammar",
    "_cache",
    "_trie",
    "_rights",
    "_framing",
    "_wire",
    "_encode",
    "_outbox",
    "_publish",
    "_delivery",
    "_sending",
]

IN_CIBUILDWHEEL = os.environ.get("CIBUILDWHEEL") == "1"


def no_extensions_requested() -> bool:
    """Whether ``EVENTBUS_NO_EXTENSIONS`` asks for the pure-Python core.

    The rule is copied word for word from ``eventbus._backend.no_extensions_requested``
    (setup.py cannot import the package it builds), so a build and an import read the
    variable the same way; a test holds the two copies equal.
    """
    return os.environ.get("EVENTBUS_NO_EXTENSIONS", "") not in ("", "0")


NO_EXTENSIONS = no_extensions_requested() or platform.python_implementation() != "CPython"

if IN_CIBUILDWHEEL and NO_EXTENSIONS:
    sys.exit("eventbus: refusing to build a wheel without its compiled core under cibuildwheel")


class OptionalBuildExt(build_ext):
    """Fall back to pure Python when compiling fails, except under cibuildwheel."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)

    @staticmethod
    def _fallback(exc: Exception) -> None:
        if IN_CIBUILDWHEEL:
            raise exc
        print(f"eventbus: compiled core not built ({exc}); the pure-Python core will be used")


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        return []
    from Cython.Build import cythonize

    exts = [
        Extension(f"eventbus._fast.{name}", [f"src/eventbus/_fast/{name}.pyx"])
        for name in FAST_MODULES
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
