"""The committed generated modules (src/eventbus/v1) match a fresh run of proto/generate.py.

Needs grpcio-tools (the version pinned in pyproject). Without it this test fails rather
than skips, so a stale schema cannot pass unnoticed; set EVENTBUS_SKIP_PROTO_CHECK=1 to
skip it deliberately (e.g. on a platform with no grpcio-tools wheel).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "proto" / "generate.py"
COMMITTED = REPO / "src"
PINNED = "1.68.1"


def _skip_requested() -> bool:
    return os.environ.get("EVENTBUS_SKIP_PROTO_CHECK") == "1"


def _generated_files(root: Path) -> list[str]:
    v1 = root / "eventbus" / "v1"
    return sorted(
        str(path.relative_to(root))
        for pattern in ("*_pb2.py", "*_pb2.pyi")
        for path in v1.glob(pattern)
    )


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    if _skip_requested():
        pytest.skip("EVENTBUS_SKIP_PROTO_CHECK=1")
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.fail(
            f"grpc_tools is not importable, so the generated protobuf code cannot be checked"
            f" against proto/: pip install grpcio-tools=={PINNED}"
            " (or set EVENTBUS_SKIP_PROTO_CHECK=1 to skip this check)",
            pytrace=False,
        )
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"proto/generate.py failed:\n{result.stderr}"

    expected = _generated_files(tmp_path)
    assert expected, "proto/generate.py wrote no *_pb2.py / *_pb2.pyi files"
    committed = _generated_files(COMMITTED)
    assert committed == expected, "generated files differ from the committed ones"
    stale = [
        name
        for name in expected
        if (tmp_path / name).read_bytes() != (COMMITTED / name).read_bytes()
    ]
    assert not stale, (
        f"stale generated code: {', '.join(stale)} differ from proto/. Run"
        f" `python proto/generate.py` with grpcio-tools=={PINNED} and commit the result."
        + (f"\n{result.stderr.strip()}" if result.stderr.strip() else "")
    )
