"""The admin ``Kick`` in a broker embedded in the test's loop: who may kick, what the kicked
client and ``$SYS`` are told, and that the kicked client stays away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import eventbus
from eventbus import Broker, BrokerConfig, topics
from eventbus.protocol import encode_frame
from eventbus.v1 import frames_pb2

DEADLINE = 10.0  # a failure guard, never a wait that success depends on


@pytest.fixture
async def served(address: str) -> AsyncIterator[Broker]:
    async with Broker(BrokerConfig(address=address, stats_interval=0)) as running:
        yield running


async def test_an_admin_kicks_a_client_which_is_told_who_and_stays_away(
    served: Broker, address: str
) -> None:
    agent = await eventbus.connect(address, principal="agent")
    victim = await eventbus.connect(address, principal="procmond", client_name="victim")
    presence = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
    tasks = await victim.subscribe(topics.TASK_PROCESS)

    info = await agent.kick(victim.connection_id, reason="maintenance")
    assert info.identity.client_name == "victim" and info.identity.principal == "procmond"
    assert info.subscriptions[0].filter == topics.TASK_PROCESS

    with pytest.raises(eventbus.Kicked) as kicked:
        await tasks.get(timeout=DEADLINE)
    message = str(kicked.value)
    assert f"kicked by principal 'agent' (connection {agent.connection_id}" in message
    assert message.endswith(": maintenance [KICKED]")
    assert isinstance(kicked.value, eventbus.ConnectionLost)
    # Reconnection is on by default, yet a kicked client stays closed.
    assert isinstance(await victim.wait_closed(), eventbus.Kicked)
    assert victim.reconnects == 0 and not victim.connected

    event = await presence.get(timeout=DEADLINE)
    gone = frames_pb2.ClientPresence.FromString(event.payload)
    assert gone.identity.connection_id == info.identity.connection_id
    assert gone.reason.startswith("kicked by principal 'agent'")
    assert broker_clients(served) == {agent.connection_id}
    await agent.close()


def broker_clients(broker: Broker) -> set[int]:
    return {info.identity.connection_id for info in broker.stats().clients_detail}


async def test_kick_needs_the_admin_right_at_the_broker_too(served: Broker, address: str) -> None:
    agent = await eventbus.connect(address, principal="agent")
    procmond = await eventbus.connect(address, principal="procmond")
    with pytest.raises(eventbus.PermissionDenied, match="needs the admin right"):
        await procmond.kick(agent.connection_id)  # refused locally, from the Welcome rights
    # The broker refuses it as well, and counts the denial.
    request = frames_pb2.Frame(kick=frames_pb2.Kick(request_id=77, connection_id=1))
    with pytest.raises(eventbus.PermissionDenied, match="may not disconnect a client"):
        await procmond._request(77, encode_frame(request))
    assert broker_clients(served) == {agent.connection_id, procmond.connection_id}
    denied = {i.identity.principal: i.denied for i in served.stats().clients_detail}
    assert denied == {"agent": 0, "procmond": 1}
    assert served.usage()["procmond"].denied == 1
    await procmond.close()
    await agent.close()


async def test_kicking_an_unknown_connection_is_not_found(served: Broker, address: str) -> None:
    async with await eventbus.connect(address, principal="agent") as agent:
        with pytest.raises(eventbus.EventBusError, match=r"no connection 999 .*\[NOT_FOUND\]"):
            await agent.kick(999)
        await agent.ping()  # the connection carries on
