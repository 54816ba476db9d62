"""Three Swarm worker nodes on this machine, for ``batch --engine swarm`` across nodes with no
shared file system: each a privileged container of the node image (scripts/setup_swarm_nodes.sh:
Debian's docker.io, made offline with mmdebstrap, cached by recipe) running its own dockerd,
joined as a worker to the swarm whose manager is the test engine, and pulling from a TLS
registry that listens on the docker bridge's gateway (the nodes reach the host there; loopback
would be each node's own). The registry's test CA goes into each node's ``certs.d`` and, by
``Registry``, into this engine's.

The manager must advertise an address the nodes reach: the gateway too. A swarm made here is
made so (with a 1 s heartbeat, so a dead node is seen in seconds) and left at :meth:`close`;
an active swarm that advertises another address is an error, never changed. Every node is
named and labelled ``docker-workflow-test-node*``; :meth:`close` makes each leave, removes it
from the node list, and removes its container with its volume; a run that was killed before
that leaves its nodes down in the list, and the next run removes them.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.types import Mount
from registry_server import Registry

ROOT = Path(__file__).resolve().parent.parent
LABEL = "docker-workflow-test-node"
API_PORT = 2375


def node_image() -> str:
    """The node image's tag (made or imported by the setup script when missing)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup_swarm_nodes.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/setup_swarm_nodes.sh failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


class SwarmNodes:
    """The registry, the swarm and three worker nodes; ``names[i]`` is node i's container."""

    def __init__(self, folder: Path, count: int = 3) -> None:
        self.client = docker.from_env()
        self.session = uuid.uuid4().hex[:8]
        bridge = self.client.networks.get("bridge")
        self.gateway = bridge.attrs["IPAM"]["Config"][0]["Gateway"]
        self.containers: list = []
        self.node_ids: list[str] = []
        self.made_swarm = False
        self.registry = Registry(folder / "registry", tls=True, address=self.gateway)
        try:
            image = node_image()
            self._manager()
            self._forget_stale_nodes()
            token = self.client.swarm.attrs["JoinTokens"]["Worker"]
            with ThreadPoolExecutor(count) as pool:
                started = list(pool.map(lambda i: self._start(image, i), range(count)))
                self.containers = [container for container, _ in started]
                self.node_ids = list(pool.map(lambda c: self._join(c, token), self.containers))
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    # -- set-up ----------------------------------------------------------------------------

    def _manager(self) -> None:
        swarm = self.client.info()["Swarm"]
        if swarm["LocalNodeState"] != "active":
            self.client.swarm.init(
                advertise_addr=self.gateway,
                listen_addr=f"{self.gateway}:2377",
                dispatcher_heartbeat_period=1_000_000_000,
            )
            self.made_swarm = True
        elif swarm.get("NodeAddr") != self.gateway:
            raise RuntimeError(
                f"this engine's swarm advertises {swarm.get('NodeAddr')}, which nodes in"
                f" containers cannot reach: leave it, or init one on {self.gateway}"
            )
        self.client.swarm.reload()

    def _forget_stale_nodes(self) -> None:
        """Drop from the node list the test nodes of runs that ended without :meth:`close`
        (killed): down, with no container of their name left. They are never given tasks, but
        the list grew by three a killed run. A node of another live run is up, so it stays."""
        containers = {c.name for c in self.client.containers.list(all=True)}
        for node in self.client.nodes.list():
            name = node.attrs["Description"].get("Hostname", "")
            down = node.attrs["Status"]["State"] == "down"
            if name.startswith(f"{LABEL}-") and down and name not in containers:
                with contextlib.suppress(docker.errors.APIError):
                    node.remove(force=True)

    def _start(self, image: str, number: int):
        name = f"{LABEL}-{self.session}-{number}"
        certs = f"/etc/docker/certs.d/{self.registry.host}/ca.crt"
        container = self.client.containers.run(
            image,
            ["-H", "unix:///var/run/docker.sock", "-H", f"tcp://0.0.0.0:{API_PORT}", "--tls=false"],
            name=name,
            hostname=name,
            detach=True,
            privileged=True,
            labels={LABEL: self.session},
            mounts=[
                Mount("/var/lib/docker", None, type="volume", labels={LABEL: self.session}),
                Mount(certs, str(self.registry.ca), type="bind", read_only=True),
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            container.reload()
            address = container.attrs["NetworkSettings"]["IPAddress"]
            if address:
                try:
                    docker.DockerClient(base_url=f"tcp://{address}:{API_PORT}", timeout=5).ping()
                    return container, address
                except Exception:
                    pass
            if container.status == "exited":
                break
            time.sleep(0.3)
        raise RuntimeError(f"node {name}'s dockerd did not start: {container.logs()[-2000:]!r}")

    def api(self, container) -> docker.DockerClient:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        return docker.DockerClient(base_url=f"tcp://{address}:{API_PORT}", timeout=30)

    def _join(self, container, token: str) -> str:
        node = self.api(container)
        address = container.attrs["NetworkSettings"]["IPAddress"]
        node.swarm.join(
            remote_addrs=[f"{self.gateway}:2377"],
            join_token=token,
            listen_addr=f"{address}:2377",
            advertise_addr=address,
        )
        return node.info()["Swarm"]["NodeID"]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = {n.id: n.attrs["Status"]["State"] for n in self.client.nodes.list()}
            if all(states.get(node_id) == "ready" for node_id in self.node_ids):
                for node_id in self.node_ids:
                    node = self.client.nodes.get(node_id)
                    spec = node.attrs["Spec"]
                    spec.setdefault("Labels", {})[LABEL] = self.session
                    node.update(spec)
                return
            time.sleep(0.3)
        raise RuntimeError(f"the test nodes did not become ready: {states}")

    # -- during a test -----------------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        """``docker kill`` the node's container: its dockerd and every task on it die."""
        self.containers[self.node_ids.index(node_id)].kill()

    def node_state(self, node_id: str) -> str:
        return self.client.nodes.get(node_id).attrs["Status"]["State"]

    # -- tear-down ---------------------------------------------------------------------------

    def close(self) -> None:
        for container in self.containers:
            try:
                container.reload()
                if container.status == "running":
                    self.api(container).swarm.leave(force=True)
            except Exception:
                pass
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True, v=True)
        for node_id in self.node_ids:
            for _ in range(20):
                try:
                    self.client.nodes.get(node_id).remove(force=True)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.DockerException:
                    time.sleep(0.5)
        if self.made_swarm:
            with contextlib.suppress(docker.errors.DockerException):
                self.client.swarm.leave(force=True)
        self.registry.stop()
