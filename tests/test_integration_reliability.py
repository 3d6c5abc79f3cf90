"""No peer can freeze the broker process, across real OS processes.

The broker is ``python -m eventbus.broker``; stopped subscribers are collector processes
under SIGSTOP; the misbehaving peer is a raw socket of this process. Deadlines only fail a
hang: every wait is for a condition.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from _procs import DEADLINE, RawClient

import eventbus
from eventbus import topics
from eventbus.protocol import encode_frame
from eventbus.v1 import frames_pb2

pytest_plugins = ["_procs"]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MiB = 1 << 20


def rss(pid: int, field: str = "VmRSS") -> int:
    """Resident bytes of a process now (VmRSS), or at its peak so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


async def test_a_peer_that_asks_and_never_reads_cannot_grow_the_broker(broker_with: Any) -> None:
    limit, budget = 1 * MiB, 4 * MiB
    broker = broker_with("--max-outbound-bytes", str(limit), "--memory-budget-bytes", str(budget))
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        gone = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        await agent.ping()
        before = rss(broker.pid)
        raw = await RawClient.connect(broker.address, "agent")
        assert raw.welcome is not None
        raw.send_bytes(
            b"".join(
                encode_frame(
                    frames_pb2.Frame(
                        subscribe=frames_pb2.Subscribe(request_id=n, filter=f"events.x.{n}")
                    )
                )
                for n in range(1, 2001)
            )
        )
        # Each ListReply names the 2,000 subscriptions (~50 KiB): 100 MB if all were kept.
        listing = frames_pb2.Frame(list_request=frames_pb2.ListRequest(request_id=9999))
        raw.send_bytes(encode_frame(listing) * 2000)
        while True:
            presence = frames_pb2.ClientPresence.FromString((await gone.get(DEADLINE)).payload)
            if presence.identity.connection_id == raw.welcome.connection_id:
                break
        assert presence.reason.startswith("slow consumer"), presence.reason
        # Its subscriptions went with it, and the broker never held more than its limit
        # for it (the rest is the interpreter's own working memory).
        assert len(presence.subscriptions) == 2000
        growth = rss(broker.pid, "VmHWM") - before
        assert growth < limit + budget + 16 * MiB, f"broker grew by {growth / MiB:.1f} MiB"
        # New clients are admitted and served at once.
        async with await eventbus.connect(broker.address, principal="procmond") as proc:
            assert await proc.publish(topics.PROCESS_LIFECYCLE, b"", confirm=True) == 0
        raw.writer.close()


STEPS, PER_STEP, PAD = 40, 50, 4000


async def test_stopped_subscribers_over_the_budget_are_shed_and_the_live_pair_gets_all(
    broker_with: Any, spawn_on: Any
) -> None:
    broker = broker_with(
        "--max-outbound-bytes",
        str(2 * MiB),
        "--memory-budget-bytes",
        str(6 * MiB),
        "--heartbeat-interval",
        "3600",  # the budget, not the heartbeat cut-off, has to keep the bus moving
    )
    spawn = spawn_on(broker)
    count = STEPS * PER_STEP  # 2,000 events of 4 KB: 8 MB for each stopped subscriber
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        live = await agent.subscribe(topics.PROCESS_ALL)
        stopped = [
            await spawn.acollector("agent", topics.PROCESS_ALL, name=f"stopped{n}")
            for n in range(5)
        ]
        procmond = await spawn.acollector("procmond", name="procmond", pad=PAD)
        for proc in stopped:
            proc.signal(signal.SIGSTOP)
        try:
            seqs: list[int] = []
            for _ in range(STEPS):
                await procmond.acommand(
                    f"publish {PER_STEP} {topics.PROCESS_LIFECYCLE}", "published"
                )
                await agent.ping(timeout=DEADLINE)
                seqs += [sequence(await live.get(0)) for _ in range(live.pending)]
            # The live pair got every event in order, without a loss.
            assert seqs == list(range(count))
            assert agent.dropped == 0 and agent.lost == 0
            stats = await agent_stats(agent)
            assert stats["dropped"] > 0
        finally:
            for proc in stopped:
                proc.signal(signal.SIGCONT)
        # Woken, each stopped subscriber accounts for every event: received or dropped.
        for proc in stopped:
            total = await proc.acommand(f"wait-total {count}", "total")
            assert total["received"] + total["dropped"] == count, total
            assert total["lost"] == 0, total
            report = await proc.astop()
            got = [r["seq"] for r in report[topics.PROCESS_ALL]]
            assert got == sorted(got)
        await procmond.astop()


def sequence(envelope: eventbus.Envelope) -> int:
    """The sequence number the publisher's correlation metadata gave ``envelope``."""
    assert envelope.correlation is not None, "an event without correlation metadata"
    return envelope.correlation.sequence


async def agent_stats(agent: eventbus.Client) -> dict[str, int]:
    clients = await agent.list_subscriptions(all_clients=True)
    return {"dropped": sum(c.dropped for c in clients)}


async def test_a_uid_over_its_connection_quota_is_refused_by_the_broker_process(
    broker_with: Any,
) -> None:
    broker = broker_with("--max-connections-per-uid", "3")
    held = [
        await eventbus.connect(broker.address, principal="agent", reconnect=False) for _ in range(3)
    ]
    try:
        with pytest.raises(eventbus.QuotaExceeded) as refused:
            await eventbus.connect(broker.address, principal="procmond", reconnect=False)
        assert "uid" in str(refused.value) and "max_connections_per_uid = 3" in str(refused.value)
    finally:
        await asyncio.gather(*(client.close() for client in held))
