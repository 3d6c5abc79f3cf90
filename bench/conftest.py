"""Fixtures of the micro-benchmarks: both cores side by side, and realistic workloads.

Every benchmark that touches the core takes the ``core`` fixture, parametrised over the
pure-Python twin and the compiled module (imported directly, as ``tests/conftest.py`` does,
so both run in one session whatever ``EVENTBUS_NO_EXTENSIONS`` says). The compiled param is
skipped, with the reason, when ``eventbus._fast`` is not built.

The workloads themselves are in ``workloads.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import SimpleNamespace

import pytest

try:
    import eventbus
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"))

import eventbus._encode
import eventbus._framing
import eventbus._grammar
import eventbus._rights
import eventbus._trie
import eventbus._wire

_NAMES = ("grammar", "trie", "rights", "framing", "wire", "encode")

_PY = SimpleNamespace(
    name="python",
    grammar=eventbus._grammar,
    trie=eventbus._trie,
    rights=eventbus._rights,
    framing=eventbus._framing,
    wire=eventbus._wire,
    encode=eventbus._encode,
)


def _compiled() -> tuple[SimpleNamespace | None, str]:
    try:
        modules = {name: importlib.import_module(f"eventbus._fast._{name}") for name in _NAMES}
    except ImportError as exc:
        return None, f"compiled core not built ({exc}); run `python setup.py build_ext --inplace`"
    return SimpleNamespace(name="cython", **modules), ""


_CY, _CY_MISSING = _compiled()


@pytest.fixture(
    scope="session",
    params=[pytest.param("python"), pytest.param("cython", marks=pytest.mark.cython)],
)
def core(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The core modules of one backend: ``core.grammar``, ``core.trie``, ``core.rights``..."""
    if request.param == "python":
        return _PY
    if _CY is None:
        pytest.skip(_CY_MISSING)
    return _CY
