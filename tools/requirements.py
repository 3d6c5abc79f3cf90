"""Print the requirements of pyproject.toml, one a line, for a pip that cannot build eventbus.

``python tools/requirements.py test`` prints ``[project] dependencies`` and those of the
``test`` extra, markers kept, so ``pip install -r`` evaluates them for its own platform. The
Windows interpreter under Wine (``make test-windows``) gets its dependencies this way: it
has no compiler, and eventbus itself comes from the source tree on its ``PYTHONPATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(extras: list[str]) -> list[str]:
    """The project's dependencies, then those of each of ``extras``, without duplicates."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    found = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            sys.exit(f"requirements.py: pyproject.toml has no extra {extra!r}")
        found.extend(optional[extra])
    return list(dict.fromkeys(found))


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
