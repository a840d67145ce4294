"""A real Ray cluster of `ray start` processes on this machine (head with dashboard, plus worker nodes).

Each node runs `ray start --block` in its own process group on its own ports, and is stopped by signalling
that group: `ray stop` would stop every Ray process on the machine, including other tests' clusters.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_env() -> dict:
    """Matching RAY_AUTH_MODE for the nodes and the clients; this venv's python first on PATH for jobs."""
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


class LocalRayCluster:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.nodes: list[subprocess.Popen] = []
        self.names: list[str] = []
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"

    def _node_ports(self) -> list[str]:
        # Worker ports 0: the OS picks each worker's port (a fixed range could overlap the ports above).
        return [
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--min-worker-port=0",
            "--max-worker-port=0",
        ]

    def _start(self, arguments: list[str], name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *arguments, *self._node_ports()],
            env=cluster_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.nodes.append(process)
        self.names.append(name)

    def start_head(self, num_cpus: int) -> None:
        self._start(
            [
                "--head",
                f"--port={self.port}",
                f"--num-cpus={num_cpus}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={free_port()}",
            ],
            "head",
        )

    def add_worker(self, num_cpus: int, resources: dict | None = None) -> None:
        arguments = [f"--address={self.address}", f"--num-cpus={num_cpus}"]
        if resources:
            arguments.append(f"--resources={json.dumps(resources)}")
        self._start(arguments, f"worker{len(self.nodes)}")

    def alive_nodes(self, timeout: float = 60) -> int:
        probe = (
            f"import ray; ray.init(address={self.address!r}, log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], env=cluster_env(), capture_output=True, text=True, timeout=timeout
        )
        return int(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else 0

    def wait_for(self, nodes: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, name in zip(self.nodes, self.names, strict=True):
                if process.poll() is not None:
                    log = (self.log_dir / f"{name}.log").read_text()[-2000:]
                    raise RuntimeError(f"ray node {name} exited:\n{log}")
            try:
                if self.alive_nodes(timeout=30) >= nodes:
                    return
            except subprocess.TimeoutExpired:
                continue
            time.sleep(1)
        raise TimeoutError(f"{nodes} Ray nodes did not come up in {timeout:g} s; see {self.log_dir}")

    def stop(self) -> None:
        """Stop this cluster's nodes; remove the cluster file `ray start --head` left if it names this cluster."""
        for process in reversed(self.nodes):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=20)
                    break
                except subprocess.TimeoutExpired:
                    continue
        current = Path("/tmp/ray/ray_current_cluster")
        if current.exists() and current.read_text().strip().endswith(f":{self.port}"):
            current.unlink()
