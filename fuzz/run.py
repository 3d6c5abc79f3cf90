"""Runs every fuzz target for a bounded time and says how many inputs each one tried.

``python fuzz/run.py --seconds 60 [target ...]`` (what ``make fuzz`` runs). Each target
starts from its committed seeds (``fuzz/corpus/<target>/``) and from what earlier runs
found (``.fuzz/corpus/<target>/``, not committed), where libFuzzer also saves new inputs;
a crashing input is written to ``.fuzz/crashes/<target>/``. A ``fuzz/<target>.dict``
is passed to libFuzzer as its dictionary. Exits 1 if any target crashed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".fuzz"
TARGETS = ("framing", "decoders", "views", "policy")

_RUNS = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


def run(target: str, seconds: int, seed: int | None = None) -> bool:
    """Fuzz ``target`` for ``seconds``; print its line of the summary; True if no crash."""
    found = WORK / "corpus" / target
    crashes = WORK / "crashes" / target
    found.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    log = WORK / f"{target}.log"
    command = [
        sys.executable,
        str(HERE / f"{target}.py"),
        str(found),
        str(HERE / "corpus" / target),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-timeout=30",  # one input running this long is a hang: reported as a crash
    ]
    if seed is not None:
        command.append(f"-seed={seed}")
    words = HERE / f"{target}.dict"
    if words.exists():
        command.append(f"-dict={words}")
    with log.open("w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    runs = _RUNS.search(text)
    if code == 0 and runs is not None:
        print(f"fuzz {target}: {runs.group(1)} executions in {runs.group(2)} s, no crash")
        return True
    artifact = _ARTIFACT.search(text)
    where = f"; input saved as {artifact.group(1)}" if artifact else ""
    print(f"fuzz {target}: FAILED (exit code {code}){where}; log {log}")
    print("\n".join(text.splitlines()[-40:]))
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument(
        "--seed", type=int, help="libFuzzer's random seed (default: a new one each run)"
    )
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}; targets: {TARGETS}")
    results = [run(target, args.seconds, args.seed) for target in args.targets or TARGETS]
    passed = sum(results)
    print(f"fuzz: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
