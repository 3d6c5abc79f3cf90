"""The Prometheus endpoint of a real broker process, scraped over HTTP and parsed with
``prometheus_client``'s own parser."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import Callable

import pytest
from _procs import DEADLINE, BrokerProc, child_env
from prometheus_client.parser import text_string_to_metric_families

import eventbus
from eventbus import ConfigError
from eventbus.broker.config import metrics_endpoint
from eventbus.protocol import encode_frame
from eventbus.v1 import frames_pb2

pytest_plugins = ["_procs"]

Samples = dict[tuple[str, str], float]


def metrics_url(broker: BrokerProc) -> str:
    for line in broker.stdout.history:
        if line.startswith("eventbus broker metrics on "):
            return line.removeprefix("eventbus broker metrics on ")
    pytest.fail("the broker did not say where its metrics are\n" + broker.diagnostics())


def scrape(url: str) -> Samples:
    """Every sample, by (name, principal label or "")."""
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, sample.labels.get("principal", ""))] = sample.value
    return samples


async def test_per_principal_metrics_are_scraped_from_a_broker_process(
    broker_with: Callable[..., BrokerProc],
) -> None:
    broker = broker_with("--metrics", "127.0.0.1:0")
    url = metrics_url(broker)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")

    async with (
        await eventbus.connect(broker.address, principal="agent") as agent,
        await eventbus.connect(broker.address, principal="procmond") as procmond,
    ):
        events = await agent.subscribe("events.process.#")
        for n in range(3):
            await procmond.publish("events.process.lifecycle", b"x" * n)
        for _ in range(3):
            await events.get(timeout=DEADLINE)
        # A publish the client library refuses locally, sent past it: the broker counts
        # the denial.
        forbidden = frames_pb2.Publish(request_id=10_000, topic="control.x")
        with pytest.raises(eventbus.PermissionDenied):
            await procmond._request(10_000, encode_frame(frames_pb2.Frame(publish=forbidden)))
        live = await asyncio.to_thread(scrape, url)

    assert live[("eventbus_clients", "agent")] == 1
    assert live[("eventbus_clients", "procmond")] == 1
    assert live[("eventbus_subscriptions", "agent")] == 1
    assert live[("eventbus_messages_out_total", "agent")] == 3
    assert live[("eventbus_messages_in_total", "procmond")] >= 4  # 3 publishes + the denied
    assert live[("eventbus_denied_total", "procmond")] == 1
    assert live[("eventbus_denied_total", "agent")] == 0
    assert live[("eventbus_dropped_total", "agent")] == 0
    assert live[("eventbus_bytes_in_total", "procmond")] > 0
    assert live[("eventbus_bytes_out_total", "agent")] > 0
    assert ("eventbus_queue_bytes", "agent") in live
    assert live[("eventbus_broker_messages_in_total", "")] == 3
    assert live[("eventbus_broker_publishers_paused", "")] == 0

    # Counters of closed connections stay: they never go down.
    def closed() -> bool:
        return scrape(url)[("eventbus_clients", "procmond")] == 0

    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not await asyncio.to_thread(closed):
        assert asyncio.get_running_loop().time() < deadline, "procmond never left"
        await asyncio.sleep(0.01)
    after = await asyncio.to_thread(scrape, url)
    assert after[("eventbus_connections_total", "procmond")] == 1
    assert after[("eventbus_denied_total", "procmond")] == 1
    assert after[("eventbus_messages_out_total", "agent")] == 3


@pytest.mark.skipif(sys.platform == "win32", reason="builds a Unix socket path")
def test_a_non_loopback_metrics_address_is_refused_unless_allowed(bus_dir: str) -> None:
    address = f"{bus_dir}/bus/eventbus.sock"
    done = subprocess.run(
        [sys.executable, "-m", "eventbus.broker", "--address", address, "--metrics", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=DEADLINE,
    )
    assert done.returncode == 1
    assert "not a loopback address" in done.stderr and "--metrics-allow-remote" in done.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:9464", ("::1", 9464)),
        ("127.8.9.10:0", ("127.8.9.10", 0)),
    ],
)
def test_loopback_metrics_addresses(text: str, expected: tuple[str, int]) -> None:
    assert metrics_endpoint(text) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:9464", "192.0.2.1:80", "example.com:9464", "[::]:1"])
def test_other_hosts_need_allow_remote(text: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        metrics_endpoint(text)
    assert metrics_endpoint(text, allow_remote=True)[1] == int(text.rpartition(":")[2])


@pytest.mark.parametrize("text", ["127.0.0.1:", "127.0.0.1:http", ":9464", "127.0.0.1:70000"])
def test_malformed_metrics_addresses_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        metrics_endpoint(text)
