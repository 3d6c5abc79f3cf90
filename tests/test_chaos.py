"""Chaos: the bus keeps its accounting while its processes are SIGKILLed.

A short run of the chaos harness (``python -m chaos``, see ``docs/chaos.md``), the regression
test of a broker kill -9 mid-stream, and the harness's accounting checked on reports made
up to break it (so a run that passes has checked something).

Every process is real and runs on the backend of the test run (children inherit
``EVENTBUS_NO_EXTENSIONS``). Nothing sleeps for a success: the peers say on stdout when they
are ready, when they first see a stream, when they are back after a restart; deadlines only
fail a hang.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _procs import DEADLINE, BrokerProc, Child, child_env, sigkill, start_broker

import eventbus
from chaos.ledger import Instance, account, subscribers_of

pytest_plugins = ["_procs"]

# The broker processes here stop on SIGTERM and must exit 0; Windows cannot send one.
pytestmark = pytest.mark.skipif(
    sys.platform == "win32",
    reason="broker processes stopped by SIGTERM; over pipes see test_windows_bus",
)

REPO = Path(__file__).resolve().parent.parent
PEER = REPO / "chaos" / "peer.py"


def chaos_env() -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env["PYTHONPATH"]
    return env


class Peer(Child):
    """``chaos/peer.py``: a publishing collector or a subscribing agent."""

    def __init__(self, address: str, role: str, principal: str, *args: str, name: str) -> None:
        argv = [sys.executable, str(PEER), role, "--address", address, "--principal", principal]
        super().__init__([*argv, *args], name, env=chaos_env())

    def expect(self, event: str, **fields: Any) -> dict[str, Any]:
        """The next message of kind ``event`` whose fields include ``fields``."""

        def matches(line: str) -> bool:
            try:
                message = json.loads(line)
            except ValueError:
                return False
            return bool(
                message.get("event") == event
                and all(message.get(k) == v for k, v in fields.items())
            )

        message: dict[str, Any] = json.loads(self.wait_line(matches))
        return message


@pytest.fixture
def peers() -> Iterator[list[Child]]:
    """Every child a test starts; each one is killed and collected afterwards."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.reap()


def test_a_short_chaos_run_accounts_for_every_event(peers: list[Child]) -> None:
    # Seed 3 starts with collector and broker kills alike.
    argv = [sys.executable, "-m", "chaos", "--duration", "6", "--seed", "3"]
    run = Child([*argv, "--interval", "0.6", "--json"], "chaos", env=chaos_env())
    peers.append(run)
    code = run.wait_exit(timeout=6 + 4 * DEADLINE)
    summary = json.loads(run.stdout.history[-1])
    assert code == 0 and summary["violations"] == [], run.diagnostics()
    assert summary["broker_kills"] >= 1 and summary["collector_kills"] >= 1, summary
    assert summary["received"] > 0


PROCESS = ("events.process.lifecycle", "events.process.metadata")
NETWORK = ("events.network.connection",)
AGENTS = {"all": ("events.#",), "process": ("events.process.#",)}


def test_a_broker_kill_mid_stream_leaves_received_dropped_lost_equal_to_sent(
    bus_dir: str, peers: list[Child]
) -> None:
    brokers: list[BrokerProc] = []
    try:
        brokers.append(start_broker(bus_dir))
        address = brokers[0].address
        agents: dict[str, Peer] = {}
        for label, filters in AGENTS.items():
            args = [arg for f in filters for arg in ("--filter", f)]
            agents[label] = Peer(address, "subscribe", "agent", *args, name=f"agent-{label}")
            peers.append(agents[label])
            agents[label].expect("ready")
        publishers: dict[Peer, tuple[str, ...]] = {}
        names: tuple[str, ...]
        for principal, names in (("procmond", PROCESS), ("netmond", NETWORK)):
            args = [arg for t in names for arg in ("--topic", t)]
            publisher = Peer(address, "publish", principal, *args, "--rate", "1000", name=principal)
            peers.append(publisher)
            publishers[publisher] = names
        instances = {p: p.expect("ready")["instance_id"] for p in publishers}

        # Mid-stream: every agent knows every stream it subscribes to (so it can see a gap
        # in it), and the publishers keep publishing while the broker dies.
        for label, agent in agents.items():
            wanted = {
                (instances[p], t)
                for p, names in publishers.items()
                for t in names
                if subscribers_of(t, [AGENTS[label]])
            }
            while wanted:
                stream = agent.expect("stream")
                wanted.discard((stream["instance_id"], stream["topic"]))
        for publisher in publishers:
            publisher.expect("progress")
        sigkill(brokers[0])
        brokers.append(start_broker(bus_dir))
        assert brokers[1].address == address

        # Back with their subscriptions; the publishers reconnected by themselves. Markers
        # until one reaches every agent make every gap before them visible.
        for agent in agents.values():
            agent.expect("state", connected=True, reconnects=1)
        last: dict[str, int] = {}
        for publisher, names in publishers.items():
            expected = {t: subscribers_of(t, list(AGENTS.values())) for t in names}
            publisher.send("finish " + json.dumps(expected))
            finished = publisher.expect("finished")
            assert finished["failures"] == [], publisher.diagnostics()
            assert finished["unsent"] == 0
            last.update(finished["last"])

        for label, agent in agents.items():
            agent.send("report")
            report = agent.expect("report")
            assert report["violations"] == [] and report["failures"] == [], report
            assert report["reconnects"] == 1
            sent = sum(n for topic, n in last.items() if subscribers_of(topic, [AGENTS[label]]))
            received, dropped, lost = report["received"], report["dropped"], report["lost"]
            assert received + dropped + lost == sent, (label, report)
            # Per stream: every one ends with the publisher's last event.
            ends = {(s["instance_id"], s["topic"]): s["last"] for s in report["streams"]}
            assert ends == {
                (instances[p], t): last[t]
                for p, names in publishers.items()
                for t in names
                if subscribers_of(t, [AGENTS[label]])
            }

        for child in [*agents.values(), *publishers]:
            child.send("stop")
            assert child.wait_exit() == 0, child.diagnostics()
        assert brokers[1].stop() == 0, brokers[1].diagnostics()
    finally:
        for broker in brokers:
            broker.reap()


async def test_a_broker_kill_before_a_streams_first_event_arrives_is_still_accounted_for(
    bus_dir: str, peers: list[Child]
) -> None:
    """The agent is subscribed; a new publisher's first five events reach a broker that
    never reads them (SIGSTOP, then SIGKILL). After the restart its next event arrives: the
    stream began after the agent subscribed, so the five before it count as lost."""
    brokers = [start_broker(bus_dir)]
    try:
        address = brokers[0].address
        agent = Peer(address, "subscribe", "agent", "--filter", "events.#", name="agent")
        peers.append(agent)
        agent.expect("ready")
        topic = PROCESS[0]
        async with await eventbus.connect(address, principal="procmond") as procmond:
            brokers[0].signal(signal.SIGSTOP)
            for sequence in range(1, 6):
                await procmond.publish(topic, b"%d" % sequence)
            sigkill(brokers[0])
            brokers.append(start_broker(bus_dir))
            agent.expect("state", connected=True, reconnects=1)
            sent = 5
            while True:  # until an event reaches the agent (a try may meet the dead broker)
                sent += 1
                try:
                    if await procmond.publish(topic, b"%d" % sent, confirm=True) == 1:
                        break
                except eventbus.ConnectionLost:
                    continue
        agent.send("report")
        report = agent.expect("report")
        assert report["violations"] == [], report
        assert report["received"] + report["dropped"] + report["lost"] == sent, report
    finally:
        for broker in brokers:
            broker.reap()


# --- the accounting, on made-up reports -----------------------------------------------------

ALIVE = Instance(0xA, "procmond", PROCESS, last={PROCESS[0]: 10, PROCESS[1]: 5})
KILLED = Instance(0xB, "netmond", NETWORK)


def report(
    *streams: tuple[int, str, int, int, int],
    lost: dict[int, int] | None = None,
    dropped: int = 0,
    violations: tuple[str, ...] = (),
) -> dict[str, Any]:
    lost = lost or {}
    return {
        "received": sum(s[4] for s in streams),
        "dropped": dropped,
        "lost": sum(lost.values()),
        "lost_by_instance": {str(k): v for k, v in lost.items()},
        "streams": [
            {"instance_id": i, "topic": t, "first": f, "last": la, "count": c}
            for i, t, f, la, c in streams
        ],
        "violations": list(violations),
        "violation_count": len(violations),
        "failures": [],
    }


def check(made_up: dict[str, Any]) -> list[str]:
    return account("agent", ("events.#",), made_up, [ALIVE, KILLED]).violations


def test_the_accounting_passes_a_complete_report() -> None:
    # 10 + 5 from the live publisher; the killed one's stream up to its last event seen (7),
    # whose gap of 3 was found lost in transit.
    complete = report(
        (0xA, PROCESS[0], 1, 10, 8),
        (0xA, PROCESS[1], 1, 5, 5),
        (0xB, NETWORK[0], 1, 7, 4),
        lost={0xA: 2, 0xB: 3},
    )
    assert check(complete) == []
    # Drops are reported per subscriber, not per publisher: the total must still add up.
    assert check({**complete, "lost": 0, "lost_by_instance": {}, "dropped": 5}) == []


@pytest.mark.parametrize(
    ("made_up", "complaint"),
    [
        # Two events missing from the live stream and nobody said so.
        (report((0xA, PROCESS[0], 1, 10, 8), (0xA, PROCESS[1], 1, 5, 5)), "!= 15"),
        # The live publisher's last event never arrived: a gap before it could hide.
        (report((0xA, PROCESS[0], 1, 9, 9), (0xA, PROCESS[1], 1, 5, 5)), "up to 9 only"),
        # An event from nowhere.
        (
            report(
                (0xA, PROCESS[0], 1, 10, 10), (0xA, PROCESS[1], 1, 5, 5), (0xC, "events.x", 1, 1, 1)
            ),
            "unknown publisher",
        ),
        # Losses blamed on the wrong publisher.
        (
            report(
                (0xA, PROCESS[0], 1, 10, 8),
                (0xA, PROCESS[1], 1, 5, 5),
                (0xB, NETWORK[0], 1, 3, 3),
                lost={0xB: 2},
            ),
            "from procmond",
        ),
        # More lost and received than there were events, hidden behind drops.
        (
            report(
                (0xA, PROCESS[0], 1, 10, 10), (0xA, PROCESS[1], 1, 5, 5), lost={0xA: 1}, dropped=4
            ),
            "does not cover",
        ),
        (
            report(
                (0xA, PROCESS[0], 1, 10, 10),
                (0xA, PROCESS[1], 1, 5, 5),
                violations=("duplicate: ...",),
            ),
            "duplicate",
        ),
    ],
    ids=[
        "unreported-gap",
        "no-final-event",
        "unknown-instance",
        "wrong-publisher",
        "too-many",
        "duplicate",
    ],
)
def test_the_accounting_catches(made_up: dict[str, Any], complaint: str) -> None:
    violations = check(made_up)
    assert any(complaint in text for text in violations), violations
