"""The ``eventbus`` command as a user runs it: a child process against a real broker process.

Every command runs as ``python -m eventbus`` with the test run's environment (so on the
pure-Python core too, under ``EVENTBUS_NO_EXTENSIONS=1``). ``sub`` says on stderr when it
has subscribed; the tests publish only after that line, and wait for exits with deadlines
that only fail a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _procs import DEADLINE, BrokerProc, Child, child_env

import eventbus
from eventbus import topics
from eventbus.cli import ExitCode
from eventbus.v1 import payloads_pb2

pytest_plugins = ["_procs"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "examples" / "eventbus.toml"


def eventbus_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "eventbus", *args]


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one ``eventbus`` command to its end."""
    return subprocess.run(
        eventbus_cmd(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=DEADLINE,
    )


def start_sub(broker: BrokerProc, *args: str, name: str = "sub") -> Child:
    """``eventbus sub ...`` in the background, returned once it has subscribed."""
    child = Child(eventbus_cmd("sub", "--address", broker.address, *args), name)
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            line = child.stderr.next(deadline)
        except TimeoutError:
            child.reap()
            pytest.fail("sub did not subscribe in time\n" + child.diagnostics())
        if line is None:
            child.reap()
            pytest.fail("sub ended before it subscribed\n" + child.diagnostics())
        if line.startswith("subscribed to"):
            return child


@pytest.fixture
def subs() -> list[Child]:
    return []


@pytest.fixture(autouse=True)
def _reap(subs: list[Child]) -> object:
    yield
    for child in subs:
        child.reap()


def test_a_published_event_reaches_sub_count(broker: BrokerProc, subs: list[Child]) -> None:
    sub = start_sub(broker, "events.process.#", "--count", "1")
    subs.append(sub)
    event = '{"pid": 4242, "name": "sshd"}'
    done = cli(
        "pub", "--address", broker.address, "--principal", "procmond", "--json", "--confirm",
        topics.PROCESS_LIFECYCLE, event,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "delivered to 1 subscriber(s)"
    assert sub.wait_exit() == 0, sub.diagnostics()
    topic, payload = sub.stdout.history[0].split(" ", 1)
    assert topic == topics.PROCESS_LIFECYCLE
    assert json.loads(payload) == {"pid": 4242, "name": "sshd"}


def test_sub_json_lines_parse_and_decode_known_payload_types(
    broker: BrokerProc, subs: list[Child]
) -> None:
    # Overlapping filters: each event is printed once all the same.
    sub = start_sub(broker, "events.process.#", "events.#", "--count", "3", "--json")
    subs.append(sub)
    address = ["--address", broker.address, "--principal", "procmond"]
    event = payloads_pb2.ProcessEvent(pid=7, name="cron").SerializeToString()
    pubs = [
        cli("pub", *address, topics.PROCESS_LIFECYCLE, "-", stdin=None),
        cli("pub", *address, "events.process.custom", "plain text"),
        cli("pub", *address, "--repeat", "1", topics.PROCESS_TREE, "--file", os.devnull),
    ]
    assert [p.returncode for p in pubs] == [0, 0, 0], [p.stderr for p in pubs]
    assert sub.wait_exit() == 0, sub.diagnostics()
    lines = [json.loads(line) for line in sub.stdout.history]
    assert [line["topic"] for line in lines] == [
        topics.PROCESS_LIFECYCLE,
        "events.process.custom",
        topics.PROCESS_TREE,
    ]
    assert lines[0]["payload_type"] == "eventbus.v1.ProcessEvent"
    assert lines[0]["payload"] == {}  # an empty payload is the message with no fields set
    assert lines[1]["payload"] == "plain text" and "payload_type" not in lines[1]
    for line in lines:
        assert line["publisher"]["principal"] == "procmond"
        assert int(line["publisher"]["sequence"]) == 1
    assert event  # the binary form decodes the same way as --json's (test below)


def test_binary_payloads_of_a_known_type_decode_to_json(
    broker: BrokerProc, subs: list[Child], tmp_path: Path
) -> None:
    sub = start_sub(broker, topics.PROCESS_LIFECYCLE, "--count", "1", "--json")
    subs.append(sub)
    path = tmp_path / "event.bin"
    path.write_bytes(payloads_pb2.ProcessEvent(pid=99, name="init").SerializeToString())
    done = cli(
        "pub", "--address", broker.address, "--principal", "procmond",
        topics.PROCESS_LIFECYCLE, "--file", str(path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sub.wait_exit() == 0, sub.diagnostics()
    assert json.loads(sub.stdout.history[0])["payload"] == {"pid": 99, "name": "init"}


def test_pub_repeats_at_a_rate_in_order(broker: BrokerProc, subs: list[Child]) -> None:
    sub = start_sub(broker, "events.process.+", "--count", "3", "--json")
    subs.append(sub)
    done = cli(
        "pub", "--address", broker.address, "--principal", "procmond",
        "events.process.beat", "tick", "--repeat", "3", "--rate", "1000",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sub.wait_exit() == 0, sub.diagnostics()
    lines = [json.loads(line) for line in sub.stdout.history]
    assert [int(line["publisher"]["sequence"]) for line in lines] == [1, 2, 3]
    assert {line["payload"] for line in lines} == {"tick"}


def test_a_denied_publish_exits_1_with_the_reason_on_stderr(broker: BrokerProc) -> None:
    done = cli("pub", "--address", broker.address, "--principal", "procmond", "control.x", "hi")
    assert done.returncode == 1
    assert "principal 'procmond' may not publish to 'control.x'" in done.stderr
    assert "rule set 'embedded default policy'" in done.stderr


def test_admin_commands_need_the_admin_right(broker: BrokerProc) -> None:
    for command in (["clients"], ["stats"], ["kick", "1"]):
        done = cli(*command, "--address", broker.address, "--principal", "procmond")
        assert done.returncode == 1, (command, done.stderr)
        assert "needs the admin right" in done.stderr


def test_kick_disconnects_the_named_client_and_it_is_told_who(
    broker: BrokerProc, subs: list[Child]
) -> None:
    victim = start_sub(
        broker, topics.TASK_PROCESS, "--principal", "procmond", "--client-name", "victim"
    )
    subs.append(victim)
    listed = cli("clients", "--address", broker.address, "--json")
    assert listed.returncode == 0, listed.stderr
    clients = [json.loads(line) for line in listed.stdout.splitlines()]
    (entry,) = [c for c in clients if c["identity"]["clientName"] == "victim"]
    assert entry["subscriptions"][0]["filter"] == topics.TASK_PROCESS

    done = cli("kick", "--address", broker.address, "victim", "--reason", "maintenance")
    assert done.returncode == 0, done.stderr
    assert f"kicked connection {entry['identity']['connectionId']}" in done.stdout

    assert victim.wait_exit() == 1, victim.diagnostics()
    said = "\n".join(victim.stderr.history)
    assert "kicked by principal 'agent'" in said and "maintenance" in said
    assert "[KICKED]" in said

    again = cli("kick", "--address", broker.address, entry["identity"]["connectionId"])
    assert again.returncode == 1 and "no connection" in again.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="builds a Unix socket path")
def test_without_a_broker_the_error_says_none_runs_and_how_to_start_one(bus_dir: str) -> None:
    missing = os.path.join(bus_dir, "nobody", "eventbus.sock")
    done = cli("pub", "--address", missing, "events.x", "hi")
    assert done.returncode == 3
    assert f"cannot connect to {missing!r}" in done.stderr
    assert "no broker appears to be running there" in done.stderr
    assert "eventbus broker" in done.stderr and "EVENTBUS_ADDRESS" in done.stderr


def test_an_unknown_principal_is_refused_naming_the_defined_ones(broker: BrokerProc) -> None:
    done = cli("stats", "--address", broker.address, "--principal", "mallory")
    assert done.returncode == 1
    assert "principal 'mallory' is not defined" in done.stderr
    assert "agent, procmond, netmond, fsmond, perfmond" in done.stderr


async def test_request_prints_the_reply_and_exits_4_without_responders(
    broker: BrokerProc,
) -> None:
    nobody = await asyncio.to_thread(
        cli, "request", "--address", broker.address, topics.HEALTH_DIAGNOSTICS, "x"
    )
    assert nobody.returncode == 4, nobody.stderr
    assert "no subscriber" in nobody.stderr

    async with await eventbus.connect(broker.address, principal="procmond") as responder:
        requests = await responder.subscribe(topics.HEALTH_DIAGNOSTICS)

        async def answer() -> None:
            request = await requests.get(timeout=DEADLINE)
            reply = payloads_pb2.DiagnosticsReply(component="procmond")
            await responder.reply(request, reply)

        answering = asyncio.create_task(answer())
        done = await asyncio.to_thread(
            cli, "request", "--address", broker.address, "--json", topics.HEALTH_DIAGNOSTICS, "{}"
        )
        await answering
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["payload_type"] == "eventbus.v1.DiagnosticsReply"
    assert reply["payload"] == {"component": "procmond"}
    assert reply["publisher"]["principal"] == "procmond"


def test_clients_stats_and_top_show_the_connections(broker: BrokerProc, subs: list[Child]) -> None:
    subs.append(start_sub(broker, "events.#", "--client-name", "watcher"))
    table = cli("clients", "--address", broker.address)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["CONN", "PID", "UID", "PRINCIPAL"]
    assert "watcher" in table.stdout and "events.#" in table.stdout

    stats = cli("stats", "--address", broker.address, "--json", "--watch", "0", "--iterations", "2")
    assert stats.returncode == 0, stats.stderr
    prints = [json.loads(line) for line in stats.stdout.splitlines()]
    assert len(prints) == 2 and prints[0]["clients"] == 2 and prints[0]["subscriptions"] == 1

    top = cli("top", "--address", broker.address, "--interval", "0", "--iterations", "2")
    assert top.returncode == 0, top.stderr
    assert top.stdout.count("eventbus top") == 2 and "watcher" in top.stdout
    assert "\x1b[" not in top.stdout  # not a terminal: no screen control


def test_the_documented_exit_codes() -> None:
    codes = {code.name: int(code) for code in ExitCode}
    assert codes == {
        "OK": 0, "FAILED": 1, "USAGE": 2, "NO_BROKER": 3, "NO_ANSWER": 4, "INTERRUPTED": 130
    }  # fmt: skip


def test_usage_errors_exit_2() -> None:
    assert cli().returncode == 2
    assert cli("pub").returncode == 2
    assert cli("frobnicate").returncode == 2
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("eventbus ")


@pytest.mark.skipif(sys.platform == "win32", reason="builds a Unix socket path")
async def test_eventbus_broker_takes_the_config_file_and_flags_over_it(
    bus_dir: str, tmp_path: Path
) -> None:
    config = tmp_path / "eventbus.toml"
    address = os.path.join(bus_dir, "bus", "eventbus.sock")
    config.write_text(
        f'[broker]\naddress = "{address}"\nmax_frame_bytes = 4096\nheartbeat_interval = 7\n'
        "stats_interval = 0\n"
    )
    broker = Child(
        eventbus_cmd("broker", "--config", str(config), "--max-frame-bytes", "8192"), "b"
    )
    try:
        line = await asyncio.to_thread(broker.wait_line, lambda text: "listening on" in text)
        assert line.endswith(address)
        async with await eventbus.connect(address, principal="agent") as agent:
            assert agent.limits.max_frame_bytes == 8192  # the flag
            assert agent.limits.heartbeat_interval_ms == 7000  # the file
    finally:
        broker.signal(signal.SIGTERM)
        code = await asyncio.to_thread(broker.wait_exit)
        broker.reap()
    assert code == 0, broker.diagnostics()


def test_eventbus_broker_refuses_a_bad_config_naming_the_line(tmp_path: Path) -> None:
    config = tmp_path / "eventbus.toml"
    config.write_text("[broker]\nstats_interval = -1\n")
    done = cli("broker", "--config", str(config))
    assert done.returncode == 1
    assert f"{config}:2: [broker] stats_interval must not be negative" in done.stderr


# --- check-config -------------------------------------------------------------------------


def test_check_config_accepts_the_example_file() -> None:
    done = cli("check-config", str(EXAMPLE_CONFIG))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{EXAMPLE_CONFIG}: ok")
    assert "policy: rule set 'daemoneye-example', 5 principal(s)" in done.stdout


def test_check_config_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "eventbus.toml"
    path.write_text(
        '[broker]\nmax_frame_bytes = 65536\nslow_consumer = "sometimes"\n\n'
        '[principals.agent]\nany_user = true\npublish = ["control.#"]\n'
    )
    done = cli("check-config", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"eventbus check-config: {path}:3: [broker] slow_consumer")
    path.write_text('[broker]\n\n[principals.agent]\nany_user = true\npublish = ["a..b"]\n')
    done = cli("check-config", str(path))
    assert done.returncode == 1 and f"{path}:5: " in done.stderr and "a..b" in done.stderr


def test_check_config_explain_names_the_rule_that_decides() -> None:
    done = cli(
        "check-config", str(EXAMPLE_CONFIG), "--explain", "procmond", topics.PROCESS_LIFECYCLE
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "principal 'procmond' (rule set 'daemoneye-example'), bound to uid [998]"
    assert lines[1] == (
        f"publish {topics.PROCESS_LIFECYCLE}: allowed by publish rule 'events.process.#'"
    )
    assert lines[2].startswith(f"subscribe {topics.PROCESS_LIFECYCLE}: refused: ")
    done = cli("check-config", str(EXAMPLE_CONFIG), "--explain", "agent", "events.process.+")
    assert "publish events.process.+: not applicable" in done.stdout
    assert "subscribe events.process.+: allowed by subscribe rule 'events.#'" in done.stdout


def test_check_config_explain_lists_the_principals_of_an_unknown_one() -> None:
    done = cli("check-config", str(EXAMPLE_CONFIG), "--explain", "mallory", "events.x")
    assert done.returncode == 1
    assert "principal 'mallory' is not defined" in done.stderr
    assert "agent, procmond, netmond, fsmond, perfmond" in done.stderr


# --- the README's examples ----------------------------------------------------------------


def _readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = text.split("```")
    return [part.removeprefix(language + "\n") for part in parts if part.startswith(language)]


def test_the_readme_collector_and_agent_run_against_a_broker(broker: BrokerProc) -> None:
    (program,) = [block for block in _readme_blocks("python") if "asyncio.run(agent())" in block]
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=child_env(EVENTBUS_ADDRESS=broker.address),
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{topics.PROCESS_LIFECYCLE} procmond init",
        f"{topics.PROCESS_LIFECYCLE} procmond sshd",
    ]


def test_the_readme_starts_with_make_demo_and_make_test() -> None:
    first = _readme_blocks("sh")[0].splitlines()
    assert [line.split()[:2] for line in first[:2]] == [["make", "demo"], ["make", "test"]]


def test_bridge_is_a_subcommand_with_the_bridges_own_checks() -> None:
    done = cli("bridge", "--host-id", "all")
    assert done.returncode == 2
    assert "host id 'all' is reserved" in done.stderr
