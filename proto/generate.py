"""Regenerate the committed protobuf modules from the schema in proto/.

    python proto/generate.py [--out DIR]

writes eventbus/v1/{frames,payloads}_pb2.py and .pyi under DIR (default: src), exactly as
`python -m grpc_tools.protoc -I proto --python_out=src --pyi_out=src <the .proto files>` does.
The output depends on the grpcio-tools version (it stamps the protobuf version it generates
for), so use the one pinned in pyproject's dev extra; tests/test_proto_fresh.py compares the
committed files with a fresh run of this script.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PROTO_FILES = ("eventbus/v1/frames.proto", "eventbus/v1/payloads.proto")
# The files protoc writes for PROTO_FILES, relative to the output directory.
GENERATED_FILES = tuple(
    name.removesuffix(".proto") + suffix
    for name in PROTO_FILES
    for suffix in ("_pb2.py", "_pb2.pyi")
)
GRPCIO_TOOLS_VERSION = "1.68.1"


def installed_grpcio_tools_version() -> str | None:
    """The installed grpcio-tools version, or None when it is not installed."""
    try:
        return metadata.version("grpcio-tools")
    except metadata.PackageNotFoundError:
        return None


def generate(out: Path) -> list[Path]:
    """Run protoc on PROTO_FILES into `out`; return the paths written.

    Raises RuntimeError when grpc_tools is missing or protoc reports an error.
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(
            f"grpc_tools is not importable ({exc}); install grpcio-tools=={GRPCIO_TOOLS_VERSION}"
        ) from exc
    # The well-known types (google/protobuf/*.proto) ship inside grpc_tools.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        *(str(PROTO_ROOT / name) for name in PROTO_FILES),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}: {' '.join(args)}")
    return [out / name for name in GENERATED_FILES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "src",
        help="directory that receives eventbus/v1/*_pb2.py[i] (default: %(default)s)",
    )
    options = parser.parse_args(argv)
    version = installed_grpcio_tools_version()
    if version is not None and version != GRPCIO_TOOLS_VERSION:
        print(
            f"warning: grpcio-tools {version} is installed but {GRPCIO_TOOLS_VERSION} is pinned;"
            " the output will differ from the committed files",
            file=sys.stderr,
        )
    try:
        written = generate(options.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
