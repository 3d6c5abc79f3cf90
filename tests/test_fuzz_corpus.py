"""The fuzz targets' seed corpus, replayed: every seed passes its target (docs/fuzzing.md).

The targets run here as plain functions, without atheris or instrumentation, so a seed
that once crashed a target keeps guarding the fix in every test run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = ("framing", "decoders", "views", "policy")


def target(name: str) -> Callable[[bytes], None]:
    """``TestOneInput`` of ``fuzz/<name>.py``, loaded from its file."""
    module_name = f"_fuzz_target_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, FUZZ / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(FUZZ))  # for fuzz/_harness.py
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(FUZZ))
        sys.modules[module_name] = module
    test_one_input: Callable[[bytes], None] = module.TestOneInput
    return test_one_input


SEEDS = [
    pytest.param(name, path, id=f"{name}/{path.name}")
    for name in TARGETS
    for path in sorted((FUZZ / "corpus" / name).iterdir())
]


def test_every_target_has_seeds() -> None:
    for name in TARGETS:
        assert any((FUZZ / "corpus" / name).iterdir()), name


@pytest.mark.parametrize(("name", "path"), SEEDS)
def test_seed_passes_its_target(name: str, path: Path) -> None:
    target(name)(path.read_bytes())
