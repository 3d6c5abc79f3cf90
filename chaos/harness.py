"""The chaos run: a broker, collectors and agents as real processes, and random SIGKILLs.

One broker process, a fleet of collector processes publishing on their ``events.*`` topics
under their own principals, and agent processes with plain subscriptions. For a bounded
time, at seeded random moments, a collector or the broker is SIGKILLed and restarted (the
broker on the same address: it replaces the stale socket). Then publishing stops, every
collector alive publishes a marker per topic that reaches every subscriber, and the run
checks (see :mod:`chaos.ledger` for the accounting):

- per subscriber and stream, sequences strictly increase (no duplicate, no reordering);
- every event of every stream is received, reported dropped or reported lost in transit;
- the broker holds exactly the live processes' connections and subscriptions, and stops
  cleanly on SIGTERM.

The seed fixes the sequence of actions and delays; process timing still varies, and
nothing checked depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import eventbus

from .ledger import Account, Instance, account, matches, subscribers_of

PEER = Path(__file__).resolve().parent / "peer.py"
# Longest any one step may take (a process start, a reconnection, a report) before the run
# counts it as a violation: a guard against hangs, never a duration anything relies on.
STEP_DEADLINE = 30.0


@dataclass(frozen=True)
class CollectorSpec:
    principal: str
    topics: tuple[str, ...]
    #: A shared subscription it holds, so a killed collector has one the broker must remove.
    task: str


FLEET = (
    CollectorSpec(
        "procmond",
        ("events.process.lifecycle", "events.process.metadata"),
        "control.collector.task.process@procmond",
    ),
    CollectorSpec(
        "netmond",
        ("events.network.connection", "events.network.dns.query"),
        "control.collector.task.network@netmond",
    ),
    CollectorSpec(
        "fsmond", ("events.filesystem.change",), "control.collector.task.filesystem@fsmond"
    ),
    CollectorSpec(
        "perfmond", ("events.performance.cpu",), "control.collector.task.performance@perfmond"
    ),
)
# Agents' filters: one sees everything, one a part (filters of one agent never overlap, so
# each event reaches each agent once).
AGENT_FILTERS = (("events.#",), ("events.process.#", "events.network.+"))


@dataclass
class Options:
    duration: float = 120.0
    seed: int = 0
    collectors: int = 4
    subscribers: int = 2
    rate: int = 200
    #: Mean seconds between two kills.
    interval: float = 1.0
    #: Share of kills aimed at the broker (the rest at collectors).
    broker_share: float = 0.35
    broker_args: tuple[str, ...] = ()
    keep_logs: bool = False


class Violation(Exception):
    """A check failed or a step did not complete: the run cannot go on meaningfully."""


class Proc:
    """A child process: JSON lines (or text) on stdout, commands on stdin, stderr to a log."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        self.killed = False
        self.stopping = False
        self._reader: asyncio.Task[None] | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.first_line: asyncio.Future[str] | None = None

    async def start(self) -> None:
        self.first_line = asyncio.get_running_loop().create_future()
        with open(self.log, "ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                limit=1 << 24,  # a subscriber's report is one long line
            )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if self.first_line is not None and not self.first_line.done():
                self.first_line.set_result(line)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if self.on_message is not None:
                self.on_message(message)
            self.messages.put_nowait(message)
        if self.first_line is not None and not self.first_line.done():
            self.first_line.set_result("")
        self.messages.put_nowait(None)

    async def expect(self, event: str, timeout: float = STEP_DEADLINE) -> dict[str, Any]:
        """The next message whose ``event`` is ``event``; others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = await asyncio.wait_for(
                    self.messages.get(), max(0.0, deadline - time.monotonic())
                )
            except asyncio.TimeoutError:
                raise Violation(f"{self.name}: no {event!r} within {timeout:g} s") from None
            if message is None:
                self.messages.put_nowait(None)
                code = await self.wait()
                raise Violation(f"{self.name} exited (code {code}) before {event!r}")
            if message.get("event") == event:
                return message

    def send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def wait(self, timeout: float = STEP_DEADLINE) -> int:
        assert self.process is not None
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            raise Violation(f"{self.name} did not exit within {timeout:g} s") from None
        if self._reader is not None:
            await self._reader
        return code

    async def sigkill(self) -> None:
        self.killed = True
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        await self.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text[-lines:])


@dataclass
class Slot:
    """A place in the fleet: the collector process filling it now, if any."""

    spec: CollectorSpec
    index: int
    proc: Proc | None = None
    instance: Instance | None = None
    state: str = "down"  # down | starting | up
    generation: int = 0

    @property
    def name(self) -> str:
        return f"{self.spec.principal}-{self.index}.{self.generation}"


@dataclass
class Agent:
    """A subscriber process and what it has told the run so far."""

    proc: Proc
    filters: tuple[str, ...]
    seen: set[tuple[int, str]] = field(default_factory=set)
    report: dict[str, Any] | None = None


@dataclass
class Summary:
    seed: int
    duration: float
    broker_kills: int = 0
    collector_kills: int = 0
    instances: int = 0
    published: int = 0
    received: int = 0
    dropped: int = 0
    lost: int = 0
    #: Publishes that raised ConnectionLost (the connection broke under them).
    interrupted: int = 0
    exact: bool = True
    violations: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.broker_kills + self.collector_kills

    def line(self) -> str:
        verdict = "OK" if not self.violations else f"{len(self.violations)} VIOLATION(S)"
        accounting = "exact" if self.exact else "bounded (drops)"
        return (
            f"chaos seed={self.seed} {self.duration:.0f}s: {self.kills} kills survived "
            f"(broker {self.broker_kills}, collectors {self.collector_kills}), "
            f"{self.instances} publisher instances; published {self.published} "
            f"({self.interrupted} interrupted), "
            f"received {self.received}, dropped {self.dropped}, lost in transit {self.lost} "
            f"(accounting {accounting}); {verdict}"
        )

    def as_json(self) -> str:
        fields = dict(self.__dict__)
        fields["kills"] = self.kills
        return json.dumps(fields)


class Chaos:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.dir = Path(tempfile.mkdtemp(prefix="eb-chaos-", dir="/tmp"))
        (self.dir / "bus").mkdir(mode=0o700)
        self.address = str(self.dir / "bus" / "eventbus.sock")
        self.summary = Summary(options.seed, options.duration)
        self.broker: Proc | None = None
        self.broker_up = False
        self.broker_generation = 0
        specs = [FLEET[n % len(FLEET)] for n in range(options.collectors)]
        self.slots = [Slot(spec, n) for n, spec in enumerate(specs)]
        self.agents: list[Agent] = []
        self.instances: list[Instance] = []
        self.restarts: set[asyncio.Task[None]] = set()
        self.procs: list[Proc] = []
        self.violations = self.summary.violations
        self.sync_lock = asyncio.Lock()

    # -- processes ------------------------------------------------------------------------

    def _proc(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, self.dir / f"{name}.log")
        self.procs.append(proc)
        return proc

    async def start_broker(self) -> None:
        self.broker_generation += 1
        argv = [sys.executable, "-m", "eventbus.broker", "--address", self.address]
        argv += ["--stats-interval", "0", "--log-level", "WARNING", *self.options.broker_args]
        broker = self._proc(f"broker.{self.broker_generation}", argv)
        await broker.start()
        assert broker.first_line is not None
        try:
            line = await asyncio.wait_for(asyncio.shield(broker.first_line), STEP_DEADLINE)
        except asyncio.TimeoutError:
            line = ""
        if "listening on" not in line:
            raise Violation(f"{broker.name} did not start: {line!r}\n{broker.tail()}")
        self.broker = broker
        self.broker_up = True

    async def start_agent(self, index: int) -> None:
        filters = AGENT_FILTERS[index % len(AGENT_FILTERS)]
        argv = [sys.executable, str(PEER), "subscribe", "--address", self.address]
        argv += ["--principal", "agent"]
        for topic_filter in filters:
            argv += ["--filter", topic_filter]
        agent = Agent(self._proc(f"agent-{index}", argv), filters)

        def heard(message: dict[str, Any]) -> None:
            event = message.get("event")
            if event == "stream":
                agent.seen.add((message["instance_id"], message["topic"]))

        agent.proc.on_message = heard
        await agent.proc.start()
        await agent.proc.expect("ready")
        self.agents.append(agent)

    async def start_collector(self, slot: Slot) -> None:
        slot.state = "starting"
        slot.generation += 1
        spec = slot.spec
        argv = [sys.executable, str(PEER), "publish", "--address", self.address]
        argv += ["--principal", spec.principal, "--rate", str(self.options.rate)]
        argv += ["--task", spec.task]
        for topic in spec.topics:
            argv += ["--topic", topic]
        proc = self._proc(slot.name, argv)
        name = slot.name
        instance: Instance | None = None

        def heard(message: dict[str, Any]) -> None:
            event = message.get("event")
            if event == "progress" and instance is not None:
                instance.progress = message["sent"]
                instance.interrupted = message["interrupted"]
            elif event == "failed":
                self.violations.append(f"{name}: publishing failed: {message}")

        proc.on_message = heard
        slot.proc = proc
        await proc.start()
        ready = await proc.expect("ready")
        instance = Instance(ready["instance_id"], name, spec.topics)
        self.instances.append(instance)
        slot.instance = instance
        slot.state = "up"

    # -- conditions -------------------------------------------------------------------------

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        """Poll ``condition`` until it holds; a violation past the step deadline."""
        deadline = time.monotonic() + STEP_DEADLINE
        while not condition():
            self.check_alive()
            if time.monotonic() > deadline:
                raise Violation(f"not within {STEP_DEADLINE:g} s: {what}")
            await asyncio.sleep(0.01)

    def check_alive(self) -> None:
        """Every process not killed on purpose must still run."""
        for proc in self.procs:
            code = proc.process.returncode if proc.process is not None else None
            if code is not None and not proc.killed and not proc.stopping:
                raise Violation(f"{proc.name} exited by itself (code {code})\n{proc.tail()}")

    async def subscribed(self) -> None:
        """Wait until every agent has made a round trip to a live broker (there is only
        ever one): its subscriptions are registered there, so a publisher started now has
        its first event reach every agent (unless the broker dies first, which a starting
        collector prevents)."""
        async with self.sync_lock:
            for agent in self.agents:
                agent.proc.send("sync")
            for agent in self.agents:
                await agent.proc.expect("synced", STEP_DEADLINE * 2)

    def streams_seen(self) -> bool:
        """No collector is starting, and every agent has seen every live stream it
        subscribes to: a broker kill now leaves only gaps agents can see."""
        for slot in self.slots:
            if slot.state == "starting":
                return False
            if slot.state != "up" or slot.instance is None:
                continue
            for agent in self.agents:
                for topic in slot.spec.topics:
                    if matches(agent.filters, topic) and (
                        (slot.instance.instance_id, topic) not in agent.seen
                    ):
                        return False
        return True

    # -- chaos ----------------------------------------------------------------------------

    def later(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        self.restarts.add(asyncio.get_running_loop().create_task(run()))

    def check_restarts(self) -> None:
        """Re-raise the failure of a restart that has ended (one that failed fails the run)."""
        for task in [t for t in self.restarts if t.done()]:
            self.restarts.discard(task)
            task.result()

    async def kill_broker(self, downtime: float) -> None:
        if not self.broker_up:
            return
        await self.until("every agent has seen every live stream", self.streams_seen)
        assert self.broker is not None
        await self.broker.sigkill()
        self.broker_up = False
        self.summary.broker_kills += 1

        async def restart() -> None:
            await asyncio.sleep(downtime)
            await self.start_broker()

        self.later(restart())

    async def kill_collector(self, choice: float, downtime: float) -> None:
        up = [slot for slot in self.slots if slot.state == "up"]
        if not up:
            return
        slot = up[int(choice * len(up))]
        assert slot.proc is not None
        await slot.proc.sigkill()
        slot.state = "down"
        slot.instance = None
        self.summary.collector_kills += 1

        async def restart() -> None:
            await asyncio.sleep(downtime)
            slot.state = "starting"  # no broker kill from here until its streams are seen
            await self.subscribed()
            await self.start_collector(slot)

        self.later(restart())

    async def settle_restarts(self) -> None:
        while self.restarts:
            done, _ = await asyncio.wait(set(self.restarts), timeout=STEP_DEADLINE * 2)
            if not done:
                raise Violation("restarts did not complete")
            self.check_restarts()

    async def storm(self) -> None:
        """Kill and restart at random until the duration is over."""
        options = self.options
        rng = self.rng
        end = time.monotonic() + options.duration
        while time.monotonic() < end:
            # Every draw is made here, in order, so a seed gives one sequence of actions.
            pause = rng.expovariate(1.0 / options.interval)
            at_broker = rng.random() < options.broker_share
            choice, downtime = rng.random(), rng.uniform(0.0, 0.6)
            await asyncio.sleep(min(pause, max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            self.check_alive()
            self.check_restarts()
            if at_broker:
                await self.kill_broker(downtime)
            else:
                await self.kill_collector(choice, downtime)

    # -- the end --------------------------------------------------------------------------

    async def finish(self) -> list[Account]:
        await self.settle_restarts()
        await self.subscribed()
        filters = [agent.filters for agent in self.agents]
        live = [slot for slot in self.slots if slot.state == "up"]

        async def finish_one(slot: Slot) -> None:
            assert slot.proc is not None and slot.instance is not None
            expected = {t: subscribers_of(t, filters) for t in slot.spec.topics}
            slot.proc.send("finish " + json.dumps(expected))
            done = await slot.proc.expect("finished", STEP_DEADLINE * 2)
            self.violations += [f"{slot.name}: {text}" for text in done["failures"]]
            slot.instance.last = done["last"]
            slot.instance.interrupted = done["interrupted"]

        await asyncio.gather(*(finish_one(slot) for slot in live))

        async def report(agent: Agent) -> None:
            agent.proc.send("report")
            agent.report = await agent.proc.expect("report")

        await asyncio.gather(*(report(agent) for agent in self.agents))
        await self.check_subscriptions(live)
        accounts = []
        for agent in self.agents:
            assert agent.report is not None
            accounts.append(account(agent.proc.name, agent.filters, agent.report, self.instances))
        return accounts

    async def check_subscriptions(self, live: list[Slot]) -> None:
        """The broker holds the live processes' connections and subscriptions, no more."""
        expected: dict[int, list[tuple[str, str]]] = {}
        for agent in self.agents:
            expected[agent.proc.pid] = sorted((f, "") for f in agent.filters)
        for slot in live:
            assert slot.proc is not None
            task_filter, _, group = slot.spec.task.partition("@")
            expected[slot.proc.pid] = [(task_filter, group)]
        async with await eventbus.connect(
            self.address, principal="agent", reconnect=False
        ) as admin:
            deadline = time.monotonic() + STEP_DEADLINE
            while True:
                clients = await admin.list_subscriptions(all_clients=True)
                actual: dict[int, list[tuple[str, str]]] = {}
                extra: list[str] = []
                for info in clients:
                    pid = info.identity.pid
                    if pid == os.getpid():
                        continue
                    if pid in actual:
                        extra.append(f"pid {pid} has a second connection")
                    subs = [(s.filter, s.group) for s in info.subscriptions]
                    actual[pid] = sorted(actual.get(pid, []) + subs)
                if actual == expected and not extra:
                    return
                if time.monotonic() > deadline:
                    break
                # A connection of a process killed a moment ago may still be closing.
                await asyncio.sleep(0.05)
        names = {p.pid: p.name for p in self.procs if p.process is not None}
        for pid in sorted(set(actual) | set(expected)):
            if actual.get(pid) != expected.get(pid):
                self.violations.append(
                    f"subscriptions of pid {pid} ({names.get(pid, 'unknown')}): broker has "
                    f"{actual.get(pid)}, live process holds {expected.get(pid)}"
                )
        self.violations += extra

    async def stop(self) -> None:
        """Stop everyone cleanly: peers on ``stop``, the broker on SIGTERM (exit 0)."""
        peers = [a.proc for a in self.agents] + [s.proc for s in self.slots if s.proc]
        for proc in peers:
            if proc.running:
                proc.stopping = True
                proc.send("stop")
        for proc in peers:
            if proc.stopping and await proc.wait() != 0:
                self.violations.append(f"{proc.name} did not exit 0\n{proc.tail()}")
        if self.broker is not None and self.broker.running:
            self.broker.stopping = True
            assert self.broker.process is not None
            self.broker.process.send_signal(signal.SIGTERM)
            code = await self.broker.wait()
            if code != 0:
                self.violations.append(f"{self.broker.name} exited {code} on SIGTERM")

    async def cleanup(self) -> None:
        for task in self.restarts:
            task.cancel()
        await asyncio.gather(*self.restarts, return_exceptions=True)
        for proc in self.procs:
            if proc.running:
                await proc.sigkill()
        if not self.options.keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            shutil.rmtree(self.dir / "bus", ignore_errors=True)

    async def run(self) -> Summary:
        summary = self.summary
        try:
            await self.start_broker()
            for index in range(self.options.subscribers):
                await self.start_agent(index)
            for slot in self.slots:
                await self.start_collector(slot)
            await self.storm()
            accounts = await self.finish()
            await self.stop()
        except Violation as exc:
            self.violations.append(str(exc))
            accounts = []
        finally:
            await self.cleanup()
        for acc in accounts:
            summary.received += acc.received
            summary.dropped += acc.dropped
            summary.lost += acc.lost
            summary.exact = summary.exact and acc.exact
            self.violations += acc.violations
        summary.instances = len(self.instances)
        summary.published = sum(instance.published for instance in self.instances)
        summary.interrupted = sum(instance.interrupted for instance in self.instances)
        if self.violations and self.options.keep_logs:
            self.violations.append(f"logs kept in {self.dir}")
        return summary


async def run(options: Options, out: IO[str] = sys.stdout) -> Summary:
    summary = await Chaos(options).run()
    for text in summary.violations:
        print(f"VIOLATION: {text}", file=out)
    return summary
