"""The bridge's parts without processes: subjects, the spool, the config, the metrics."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

pytest.importorskip("nats", reason="nats-py is not installed (pip install nats-py)")

from eventbus.bridge import BridgeConfig, BridgeStats
from eventbus.bridge.spool import Spool
from eventbus.bridge.stats import serve_metrics
from eventbus.bridge.subjects import (
    check_host_id,
    filter_to_subject,
    subject_to_topic,
    topic_to_subject,
)
from eventbus.errors import ConfigError

# --- subjects ------------------------------------------------------------------------------


def test_topics_map_level_by_level() -> None:
    assert topic_to_subject("web-1", "events.process.lifecycle") == (
        "daemoneye.web-1.events.process.lifecycle"
    )
    assert filter_to_subject("web-1", "events.+.x.#") == "daemoneye.web-1.events.*.x.>"


@pytest.mark.parametrize("topic", ["a.*.b", "a.>", "x%2A.y", "50%.ok", "$SYS.client.connected"])
def test_nats_wildcards_in_a_level_are_escaped_and_come_back(topic: str) -> None:
    subject = topic_to_subject("h", topic)
    tokens = subject.split(".")
    assert "*" not in tokens and ">" not in tokens and not any("*" in t for t in tokens)
    assert subject_to_topic(subject, ("h",)) == topic


def test_subjects_of_other_hosts_or_no_topic_are_not_taken() -> None:
    assert subject_to_topic("daemoneye.other.control.x", ("h", "all")) is None
    assert subject_to_topic("daemoneye.all.control.x", ("h", "all")) == "control.x"
    assert subject_to_topic("elsewhere.h.control.x", ("h",)) is None
    assert subject_to_topic("daemoneye.h", ("h",)) is None


@pytest.mark.parametrize("host_id", ["", "all", "a.b", "a b", "a*", "a>", "a\n"])
def test_a_host_id_must_be_one_token_of_one_host(host_id: str) -> None:
    with pytest.raises(ValueError):
        check_host_id(host_id)


# --- the spool -----------------------------------------------------------------------------


def spool(directory: Path, max_bytes: int = 1 << 20, segment_bytes: int = 256) -> Spool:
    queue = Spool(str(directory), max_bytes=max_bytes, segment_bytes=segment_bytes)
    queue.open()
    return queue


def test_records_come_back_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    queue = spool(tmp_path)
    bodies = [f"record {i}".encode() * 5 for i in range(40)]
    assert [queue.append(body) for body in bodies] == list(range(40))
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".seg")]) > 1
    first = queue.read_nowait(15)
    assert [body for _, body in first] == bodies[:15]
    queue.commit(10)  # 10..14 were read but not acknowledged: sent again after a restart
    queue.close()

    again = spool(tmp_path)
    assert again.pending == 30 and again.identity == queue.identity
    assert again.read_nowait(100) == list(enumerate(bodies))[10:]
    assert again.append(b"more") == 40
    again.commit(41)
    assert again.pending == 0 and again.size_bytes == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".seg")]
    again.close()


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    queue = spool(tmp_path, segment_bytes=1 << 20)
    for i in range(3):
        queue.append(b"x%d" % i)
    queue.close()
    (segment,) = [tmp_path / n for n in os.listdir(tmp_path) if n.endswith(".seg")]
    with open(segment, "ab") as handle:
        handle.write(b"\x10\x00\x00\x00\x00")  # a header cut short: the bridge died mid-write
    again = spool(tmp_path, segment_bytes=1 << 20)
    assert [body for _, body in again.read_nowait(10)] == [b"x0", b"x1", b"x2"]
    assert again.append(b"x3") == 3
    assert [body for _, body in again.read_nowait(10)] == [b"x3"]
    again.close()


def test_the_bound_refuses_the_newest(tmp_path: Path) -> None:
    queue = spool(tmp_path, max_bytes=100, segment_bytes=1000)
    accepted = [queue.append(b"y" * 12) for _ in range(10)]
    # 8 bytes of header + 12 of body: five fit in 100 bytes.
    assert accepted == [0, 1, 2, 3, 4, None, None, None, None, None]
    queue.commit(2)  # freed only with the whole segment
    assert queue.append(b"y" * 12) is None
    queue.commit(5)
    assert queue.append(b"y" * 12) == 5
    queue.close()


async def test_read_waits_for_an_append(tmp_path: Path) -> None:
    queue = spool(tmp_path)
    reader = asyncio.ensure_future(queue.read(10))
    await asyncio.sleep(0)
    assert not reader.done()
    queue.append(b"hello")
    assert await asyncio.wait_for(reader, 5) == [(0, b"hello")]
    queue.close()


# --- config and metrics ----------------------------------------------------------------------


def test_config_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(
        '[bridge]\nhost_id = "web-1"\n[nats]\nservers = ["nats://a:4222", "nats://b:4222"]\n'
        'replicas = 3\n[topics]\nup = ["events.#"]\n[spool]\nmax_bytes = 1000\n'
    )
    config = BridgeConfig.load(str(path)).validate()
    assert config.nats == ["nats://a:4222", "nats://b:4222"] and config.replicas == 3
    assert config.up == ("events.#",) and config.spool_max_bytes == 1000
    assert config.durable_name == "bridge-web-1"
    path.write_text("[nats]\nreplica = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'replica' in \\[nats\\]"):
        BridgeConfig.load(str(path))
    with pytest.raises(ConfigError, match="host_id"):
        BridgeConfig(host_id="all").validate()
    with pytest.raises(ConfigError, match=r"topics\.up"):
        BridgeConfig(host_id="h", up=("events..x",)).validate()


async def test_metrics_endpoint_serves_the_counters() -> None:
    stats = BridgeStats(overflow=7, spool_pending=3)
    server = await serve_metrics(stats, "web-1", "127.0.0.1:0")
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        text = (await reader.read()).decode()
        writer.close()
    finally:
        server.close()
    assert text.startswith("HTTP/1.1 200 OK")
    assert 'eventbus_bridge_overflow_total{host="web-1"} 7' in text
    assert 'eventbus_bridge_spool_pending{host="web-1"} 3' in text


def test_the_command_refuses_a_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    from eventbus.bridge.__main__ import main

    assert main(["--host-id", "all"]) == 2
    assert "host id 'all' is reserved" in capsys.readouterr().err
    assert main(["--host-id", "h", "--nats", "http://x"]) == 2


def test_the_example_config_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "bridge.toml"
    config = BridgeConfig.load(str(example)).validate()
    assert config.host_id == "web-1" and config.replicas == 3
    assert config.up == ("events.#", "control.health.#", "$SYS.client.#")
