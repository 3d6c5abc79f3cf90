"""End-to-end benchmark: a real broker process, publisher and subscriber processes.

Starts ``python -m eventbus.broker --address <tmp>/bus.sock --stats-interval 0`` and, for each
scenario, subscriber then publisher processes (``bench/e2e_worker.py``) using the real client.
Measures, per scenario:

* latency (publisher's ``time.monotonic_ns()`` before ``publish`` to the subscriber's when it
  takes the event; one system-wide clock): p50/p90/p99/p99.9, paced and unpaced;
* throughput: messages/s published end to end (first send to last receipt), deliveries/s
  (x subscribers), payload MB/s;
* loss: sent vs received vs ``Dropped`` reported by the broker; *silent* loss (sent - received
  - dropped, per subscriber) must be 0;
* the CPU time per message of the publishers, the broker and the subscribers, and the
  broker's peak RSS (``VmHWM``, reset before each scenario through
  ``/proc/<pid>/clear_refs``).

Every bus scenario runs on both cores (``EVENTBUS_NO_EXTENSIONS=1`` in every process for the
pure-Python one) and both loops (``--loop asyncio`` on the broker and ``EVENTBUS_LOOP=asyncio``
for the clients). The baseline, in the same run, is ``bench/e2e_relay.py``: raw length-
prefixed frames relayed between plain asyncio streams, no protobuf, no ACL; the bus is quoted
as a ratio of it.

The whole matrix is run ``--repeat`` times (3), round after round, and each measure is the
median of its runs; message counts and losses are summed over the runs.

    python bench/e2e.py                 # the full matrix, 3 rounds, 1.5 to 3 minutes on 2 cores
    python bench/e2e.py --quick         # a few seconds: selected core, uvloop, 64 B, 1 round
    python bench/e2e.py --messages 100000 --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WORKER = HERE / "e2e_worker.py"
RELAY = HERE / "e2e_relay.py"
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

READY_TIMEOUT = 30.0
PACED = "latency, paced 1k/s"
DRAIN_GRACE = 20.0


@dataclass(frozen=True)
class Scenario:
    name: str
    pubs: int
    subs: int
    size: int
    count: int  # messages in all, split between the publishers
    rate: float = 0.0  # per publisher, messages/s; 0: as fast as the client goes
    confirm: bool = False


@dataclass
class Result:
    impl: str  # "bus" or "raw"
    backend: str  # "cython", "python" or "-" for the relay
    loop: str
    scenario: str
    pubs: int
    subs: int
    size: int
    rate: float
    confirm: bool
    sent: int = 0
    received: int = 0
    dropped: int = 0
    silent: int = 0
    elapsed_s: float = 0.0
    msgs_per_s: float = 0.0
    deliveries_per_s: float = 0.0
    mb_per_s: float = 0.0
    p50_us: float = 0.0
    p90_us: float = 0.0
    p99_us: float = 0.0
    p999_us: float = 0.0
    max_us: float = 0.0
    server_cpu_us_per_msg: float = 0.0
    server_busy: float = 0.0
    pub_cpu_us_per_msg: float = 0.0
    sub_cpu_us_per_msg: float = 0.0
    server_peak_rss_mb: float = 0.0
    peak_is_per_scenario: bool = True
    runs: int = 1
    error: str = ""


class Failed(Exception):
    pass


# --- child processes ------------------------------------------------------------------------


class Child:
    """A child process with line-wise, deadline-bound reading of its stdout."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._stderr: TextIO = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # a Ctrl-C of the benchmark reaches us, not them
        )
        self._buffer = b""
        self._lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def line(self, deadline: float) -> str:
        """The next line the child prints; Failed when it exits or the deadline passes."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while not self._lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failed(f"{self.name}: no answer in time{self._tail()}")
            with selectors.DefaultSelector() as selector:
                selector.register(fd, selectors.EVENT_READ)
                if not selector.select(min(remaining, 1.0)):
                    continue
            data = os.read(fd, 65536)
            if not data:
                raise Failed(f"{self.name}: exited ({self.proc.poll()}){self._tail()}")
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            self._lines.extend(line.decode() for line in lines if line.strip())
        return self._lines.pop(0)

    def expect(self, prefix: str, deadline: float) -> str:
        line = self.line(deadline)
        if not line.startswith(prefix):
            raise Failed(f"{self.name}: expected {prefix!r}, got {line!r}{self._tail()}")
        return line

    def result(self, deadline: float) -> dict[str, Any]:
        while True:
            line = self.line(deadline)
            if line.startswith("{"):
                return dict(json.loads(line))

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """End the process (signal, then kill after ``timeout``) and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            self._stderr.flush()
            text = self.log.read_text(errors="replace").strip()
            if text:
                return "\n    " + "\n    ".join(text.splitlines()[-8:])
        return ""


def child_env(backend: str, loop: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.pop("EVENTBUS_NO_EXTENSIONS", None)
    env.pop("EVENTBUS_ADDRESS", None)
    if backend == "python":
        env["EVENTBUS_NO_EXTENSIONS"] = "1"
    env["EVENTBUS_LOOP"] = loop
    env["PYTHONUNBUFFERED"] = "1"
    return env


def backend_of(env: dict[str, str]) -> str:
    """Which core ``eventbus`` selects in a process started with ``env``."""
    out = subprocess.run(
        [PYTHON, "-c", "import eventbus; print(eventbus.BACKEND)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return sys.platform != "win32"


# --- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of the process's main thread (the event loop): ns-precise from schedstat,
    else from the clock ticks of ``stat``."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


# --- one scenario ---------------------------------------------------------------------------


def percentile(ordered: Sequence[int], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def run_scenario(
    server: Child,
    impl: str,
    backend: str,
    loop: str,
    scenario: Scenario,
    env: dict[str, str],
    address: str,
    workdir: Path,
) -> Result:
    result = Result(
        impl,
        backend if impl == "bus" else "-",
        loop,
        scenario.name,
        scenario.pubs,
        scenario.subs,
        scenario.size,
        scenario.rate,
        scenario.confirm,
    )
    per_pub = scenario.count // scenario.pubs
    total = per_pub * scenario.pubs
    role = "bus" if impl == "bus" else "raw"
    common = ["--address", address, "--loop", loop, "--size", str(scenario.size)]
    tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{impl}-{backend}-{loop}-{scenario.name}-{scenario.size}")
    children: list[Child] = []
    try:
        subs = []
        for i in range(scenario.subs):
            argv = [PYTHON, str(WORKER), f"{role}-sub", *common, "--id", str(i)]
            argv += ["--expect", str(total), "--latency-file", str(workdir / f"{tag}-{i}.lat")]
            subs.append(Child(f"subscriber {i}", argv, env, workdir / f"{tag}-sub{i}.log"))
        children += subs
        deadline = time.monotonic() + READY_TIMEOUT
        for child in subs:
            _check_backend(child.expect("READY", deadline), impl, backend)
        pubs = []
        for i in range(scenario.pubs):
            argv = [PYTHON, str(WORKER), f"{role}-pub", *common, "--id", str(i)]
            argv += ["--count", str(per_pub), "--rate", str(scenario.rate)]
            if scenario.confirm:
                argv.append("--confirm")
            pubs.append(Child(f"publisher {i}", argv, env, workdir / f"{tag}-pub{i}.log"))
        children += pubs
        for child in pubs:
            _check_backend(child.expect("READY", deadline), impl, backend)

        result.peak_is_per_scenario = reset_peak(server.pid)
        cpu_before = cpu_seconds(server.pid)
        for child in pubs:
            child.send("GO")
        budget = 60.0 + total / 2000 + (per_pub / scenario.rate if scenario.rate else 0)
        pub_results = [child.result(time.monotonic() + budget) for child in pubs]
        deadline = time.monotonic() + DRAIN_GRACE
        sub_results = []
        for child in subs:
            try:
                sub_results.append(child.result(deadline))
            except Failed:
                child.send("STOP")  # it lost messages without being told: say so
                sub_results.append(child.result(time.monotonic() + 10))
        server_cpu = cpu_seconds(server.pid) - cpu_before
        result.server_peak_rss_mb = peak_rss_mb(server.pid)
    finally:
        for child in children:
            child.stop()

    result.sent = sum(r["sent"] for r in pub_results)
    result.received = sum(r["received"] for r in sub_results)
    result.dropped = sum(r["dropped"] for r in sub_results)
    result.silent = result.sent * scenario.subs - result.received - result.dropped
    start = min(r["t_start"] for r in pub_results)
    end = max(r["t_last"] for r in sub_results if r["t_last"]) if result.received else start
    result.elapsed_s = max(end - start, 1) / 1e9
    delivered_msgs = result.received / scenario.subs
    result.msgs_per_s = delivered_msgs / result.elapsed_s
    result.deliveries_per_s = result.received / result.elapsed_s
    result.mb_per_s = result.received * scenario.size / result.elapsed_s / 1e6
    result.server_cpu_us_per_msg = server_cpu / max(result.sent, 1) * 1e6
    result.server_busy = server_cpu / result.elapsed_s
    result.pub_cpu_us_per_msg = sum(r["cpu_s"] for r in pub_results) / max(result.sent, 1) * 1e6
    sub_cpu = sum(r["cpu_s"] for r in sub_results)
    result.sub_cpu_us_per_msg = sub_cpu / max(result.received, 1) * 1e6

    latencies = array("q")
    for i in range(scenario.subs):
        path = workdir / f"{tag}-{i}.lat"
        with open(path, "rb") as handle:
            latencies.frombytes(handle.read())
        path.unlink()
    ordered = sorted(latencies)
    result.p50_us = percentile(ordered, 0.50)
    result.p90_us = percentile(ordered, 0.90)
    result.p99_us = percentile(ordered, 0.99)
    result.p999_us = percentile(ordered, 0.999)
    result.max_us = ordered[-1] / 1000 if ordered else 0.0
    return result


def _check_backend(ready: str, impl: str, backend: str) -> None:
    if impl == "bus" and ready.split()[1:2] != [backend]:
        raise Failed(f"a client runs on {ready.split()[1:2]} instead of the {backend} core")


@contextlib.contextmanager
def server_process(
    impl: str, backend: str, loop: str, env: dict[str, str], workdir: Path
) -> Iterator[tuple[Child, str]]:
    """The broker (or the baseline relay) on a fresh socket, stopped on exit."""
    address = str(workdir / f"{impl}-{backend}-{loop}.sock")
    if impl == "bus":
        argv = [PYTHON, "-m", "eventbus.broker", "--address", address, "--stats-interval", "0"]
        argv += ["--loop", loop, "--log-level", "WARNING"]
        ready = "eventbus broker listening"
    else:
        argv = [PYTHON, str(RELAY), address, "--loop", loop]
        ready = "listening"
    server = Child(f"{impl} server", argv, env, workdir / f"{impl}-{backend}-{loop}-server.log")
    try:
        server.expect(ready, time.monotonic() + READY_TIMEOUT)
        yield server, address
    finally:
        server.stop(signal.SIGTERM, timeout=10.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)


# --- the matrix -----------------------------------------------------------------------------


def scenarios(messages: int, quick: bool, confirm: bool) -> list[Scenario]:
    paced_count = 300 if quick else 2000
    found = [Scenario(PACED, 1, 1, 64, paced_count, rate=1000.0)]
    for size in (64,) if quick else (64, 1024):
        found += [
            Scenario("1 -> 1", 1, 1, size, messages),
            Scenario("1 -> 4", 1, 4, size, messages),
            Scenario("4 -> 1", 4, 1, size, messages),
        ]
    if confirm:
        found.append(Scenario("1 -> 1 confirm=True", 1, 1, 64, max(messages // 10, 100), 0, True))
    return found


def run_matrix(args: argparse.Namespace, workdir: Path, out: TextIO) -> list[Result]:
    """Every run, round after round: each round restarts the servers and goes through every
    configuration once, so a noisy spell on the machine hits all of them, not one."""
    results: list[Result] = []
    selected = backend_of(child_env("cython", "asyncio"))
    backends = args.backends or (
        ["cython" if selected == "cython" else "python"] if args.quick else ["cython", "python"]
    )
    loops = args.loops or (["uvloop"] if args.quick else ["uvloop", "asyncio"])
    if not have_uvloop() and "uvloop" in loops:
        print("uvloop is not installed: skipping the uvloop runs", file=out)
        loops = [loop for loop in loops if loop != "uvloop"]
    if "cython" in backends and selected != "cython":
        print("skipping the cython core: eventbus._fast is not built", file=out)
        backends = [backend for backend in backends if backend != "cython"]
    plan = scenarios(args.messages, args.quick, not args.no_confirm)
    for round_ in range(args.repeat):
        print(f"round {round_ + 1} of {args.repeat}", file=out)
        for loop in loops:
            for impl, backend in [("raw", "-")] + [("bus", backend) for backend in backends]:
                env = child_env("python" if backend == "python" else "cython", loop)
                with server_process(impl, backend, loop, env, workdir) as (server, address):
                    for scenario in plan:
                        if scenario.confirm and impl == "raw":
                            continue
                        if scenario.rate and round_:  # one paced run gives enough samples
                            continue
                        results.append(
                            _one(server, impl, backend, loop, scenario, env, address, workdir, out)
                        )
    return results


def _one(
    server: Child,
    impl: str,
    backend: str,
    loop: str,
    scenario: Scenario,
    env: dict[str, str],
    address: str,
    workdir: Path,
    out: TextIO,
) -> Result:
    label = f"{impl:3} {backend:6} {loop:7} {scenario.name} {scenario.size} B"
    print(f"  {label} ...", file=out, end="", flush=True)
    began = time.monotonic()
    try:
        result = run_scenario(server, impl, backend, loop, scenario, env, address, workdir)
    except Failed as exc:
        print(f" FAILED: {exc}", file=out)
        return Result(
            impl,
            backend,
            loop,
            scenario.name,
            scenario.pubs,
            scenario.subs,
            scenario.size,
            scenario.rate,
            scenario.confirm,
            error=str(exc),
        )
    print(
        f" {time.monotonic() - began:.1f} s, {result.msgs_per_s:,.0f} msg/s",
        file=out,
        flush=True,
    )
    return result


_COUNTS = ("sent", "received", "dropped", "silent")


def aggregate(runs: list[Result]) -> list[Result]:
    """One row per configuration: the median of each measure over its runs, the sums of
    the message counts (every loss counts), the highest peak RSS; failed runs are named."""
    groups: dict[tuple[Any, ...], list[Result]] = {}
    for run in runs:
        key = (run.impl, run.backend, run.loop, run.scenario, run.size)
        groups.setdefault(key, []).append(run)
    rows = []
    for group in groups.values():
        good = [r for r in group if not r.error]
        row = replace(good[0] if good else group[0], runs=len(group))
        if good:
            for name, value in asdict(row).items():
                if isinstance(value, float) and name not in ("rate", "server_peak_rss_mb"):
                    setattr(row, name, statistics.median(getattr(r, name) for r in good))
            for name in _COUNTS:
                setattr(row, name, sum(getattr(r, name) for r in good))
            row.server_peak_rss_mb = max(r.server_peak_rss_mb for r in good)
            row.peak_is_per_scenario = all(r.peak_is_per_scenario for r in good)
        row.error = "; ".join(r.error for r in group if r.error)
        rows.append(row)
    return rows


# --- output ---------------------------------------------------------------------------------


def _baseline(results: list[Result], r: Result) -> Result | None:
    for other in results:
        if (
            other.impl == "raw"
            and other.loop == r.loop
            and (other.scenario, other.size) == (r.scenario, r.size)
            and not other.error
        ):
            return other
    return None


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _table(head: Sequence[str], rows: list[list[str]], out: TextIO, left: int = 1) -> None:
    """A Markdown table, padded so it also reads in a terminal; ``left`` columns of text."""
    widths = [max(len(cells[i]) for cells in [list(head), *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    print(line(head), file=out)
    print(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":" if i >= left else ":" + "-" * (w + 1))
            for i, w in enumerate(widths)
        )
        + "|",
        file=out,
    )
    for cells in rows:
        print(line(cells), file=out)


def _order(r: Result) -> tuple[Any, ...]:
    return (
        r.size,
        r.confirm,
        r.scenario != PACED,
        r.scenario,
        r.loop != "uvloop",
        r.impl == "bus",
        r.backend,
    )


def _config(r: Result) -> str:
    return f"{r.impl} {r.backend} {r.loop}" if r.impl == "bus" else f"raw relay {r.loop}"


def print_tables(results: list[Result], out: TextIO) -> None:
    results = sorted(results, key=_order)
    latency_rows = []
    for r in results:
        if r.error or r.size != 64 or r.confirm or r.scenario not in (PACED, "1 -> 1"):
            continue
        base = _baseline(results, r)
        ratio = f"{r.p50_us / base.p50_us:.1f}" if base and base.p50_us and r.impl == "bus" else ""
        latency_rows.append(
            [
                _config(r),
                "paced 1k/s" if r.rate else "unpaced",
                _fmt(r.p50_us),
                _fmt(r.p90_us),
                _fmt(r.p99_us),
                _fmt(r.p999_us),
                _fmt(r.max_us),
                ratio,
                str(r.dropped + r.silent),
            ]
        )
    print(
        "\nLatency, 1 publisher -> 1 subscriber, 64 B: publish call to the subscriber's loop",
        file=out,
    )
    _table(
        ["config", "rate", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "p50 x raw", "lost"],
        latency_rows,
        out,
        left=2,
    )

    rows = []
    for r in results:
        if r.rate:
            continue
        name = r.scenario.replace(" confirm=True", " confirmed")
        if r.error:
            rows.append([name, f"{r.size} B", _config(r), "failed"] + [""] * 10)
            continue
        base = _baseline(results, r)
        ratio = (
            f"{r.msgs_per_s / base.msgs_per_s:.2f}"
            if base and base.msgs_per_s and r.impl == "bus"
            else ""
        )
        rows.append(
            [
                name,
                f"{r.size} B",
                _config(r),
                _fmt(r.msgs_per_s),
                _fmt(r.deliveries_per_s),
                _fmt(r.mb_per_s, 1),
                ratio,
                str(r.dropped),
                str(r.silent),
                _fmt(r.p50_us),
                _fmt(r.p99_us),
                f"{r.pub_cpu_us_per_msg:.1f} / {r.server_cpu_us_per_msg:.1f} / "
                f"{r.sub_cpu_us_per_msg:.1f}",
                _fmt(r.server_peak_rss_mb, 1),
            ]
        )
    print(
        "\nThroughput: msg/s = published messages through per second (first send to last"
        " receipt), deliv/s counts each subscriber; medians of the rounds, loss summed",
        file=out,
    )
    _table(
        [
            "pubs -> subs",
            "payload",
            "config",
            "msg/s",
            "deliv/s",
            "MB/s",
            "x raw",
            "dropped",
            "silent",
            "p50 µs",
            "p99 µs",
            "CPU µs/msg pub / srv / sub",
            "srv peak MB",
        ],
        rows,
        out,
        left=3,
    )
    silent = sum(r.silent for r in results if not r.error)
    failed = sum(1 for r in results if r.error)
    print(f"\nsilent loss over all runs: {silent} (must be 0); failed runs: {failed}", file=out)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(ImportError):
        import uvloop

        info["uvloop"] = uvloop.__version__
    with contextlib.suppress(ImportError):
        import google.protobuf
        from google.protobuf.internal import api_implementation

        info["protobuf"] = f"{google.protobuf.__version__} ({api_implementation.Type()})"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/e2e.py",
        description="End-to-end cross-process benchmark of the eventbus broker.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds: one core, uvloop, 64 B, few messages"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help="messages per throughput run (default 50000; --quick 5000)",
    )
    parser.add_argument("--backends", nargs="+", choices=["cython", "python"])
    parser.add_argument("--loops", nargs="+", choices=["uvloop", "asyncio"])
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds over the whole matrix; medians are reported (default 3; --quick 1)",
    )
    parser.add_argument("--no-confirm", action="store_true", help="skip the confirm=True run")
    parser.add_argument("--json", metavar="OUT.json", help="write every result there")
    args = parser.parse_args(argv)
    if args.messages is None:
        args.messages = 5000 if args.quick else 50_000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if sys.platform != "linux":
        print("bench/e2e.py reads /proc: it runs on Linux only", file=sys.stderr)
        return 2

    info = machine()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    workdir = Path(tempfile.mkdtemp(prefix="eventbus-e2e-"))
    began = time.monotonic()
    try:
        runs = run_matrix(args, workdir, sys.stdout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = aggregate(runs)
    print_tables(results, sys.stdout)
    info["loadavg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"total {time.monotonic() - began:.0f} s; load average {info['loadavg_at_end']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "machine": info,
                    "results": [asdict(r) for r in results],
                    "runs": [asdict(r) for r in runs],
                },
                handle,
                indent=1,
            )
    return 1 if any(r.error or r.silent for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
