"""``batch --engine swarm``: the inputs as shards of a replicated job on Docker Swarm, with no
file system shared between the nodes.

Each round creates one ``replicated-job`` service with K tasks; task ``s`` (``{{.Task.Slot}}``,
given to the program as ``WORKFLOW_SHARD``; swarmkit renders slot 0 of a job as the node's ID,
which the program reads as shard 0) runs shard ``s``. What travels, and how:

* **Inputs**: Swarm configs. A config holds at most 500 KB, so a shard's ``--indexed`` lines are
  cut into chunks of :data:`CHUNK_BYTES` (one input of megabytes spans several), each a config
  mounted at ``/in/<shard>/<chunk>``; the program reads the folder ``/in/<shard>`` as one stream
  in name order. The manager hands each task's configs to its node; every task mounts every
  shard's configs (one service spec), so a batch's inputs live in the swarm's Raft store while it
  runs: megabytes, not gigabytes.
* **Results**: the tasks' logs. The program writes its result lines to stdout; they are read
  while the tasks run and once more per task at the end of the round (``swarm_logs``).
* **The image**: the digest ``build --push`` recorded for the same build
  (``rules/docker/registry_push.py``), which every node pulls from the registry. Without one,
  or when that registry is on loopback (reachable from this machine only), or with
  ``--network host`` (this machine's network), the tasks are placed on this node.

A node that goes down mid-run loses nothing: what its tasks delivered is kept, its tasks count
as finished (Swarm would report them only much later), and the indices without a result (of a
failed, killed, rejected or lost task) form the next round, up to ``shard_retries`` times;
whatever is still missing is reported per index, never dropped. Every index is taken once,
however often its line is read. The service, the configs and the network are removed
afterwards, also on failure or Ctrl-C.

``--network none``: swarm has no such network, and a task without one lands on the default
bridge, so the batch gets an internal overlay network of its own (no route anywhere else),
removed with the rest.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from rules.deploy.batch.inputs import InputsFile, split
from rules.deploy.batch.results import error_record
from rules.deploy.batch.settings import BatchSettings
from rules.deploy.batch.swarm_logs import LogFollower, read_task_log
from rules.deploy.container import RunLimits
from rules.docker.engine import docker_client, docker_error
from rules.docker.registry_push import pushed_reference
from rules.errors import UserError

INPUTS = "/in"
CHUNK_BYTES = 480 * 1024  # under swarmkit's 500 KiB per config
TERMINAL = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}
POLL_SECONDS = 1.0
LABEL = "docker-workflow.batch"


def _require_manager(client) -> None:
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise UserError(
            "--engine swarm needs this Docker engine to be a swarm manager: run 'docker swarm"
            " init' (a single machine is a swarm of one), or use --engine local"
        )


class _Round:
    """One job: its shards and the configs that carry them."""

    def __init__(self, number: int, shards: list[list[int]]) -> None:
        self.number = number
        self.shards = shards
        self.configs: list = []


def _chunks(data: bytes) -> list[bytes]:
    return [data[at : at + CHUNK_BYTES] for at in range(0, len(data), CHUNK_BYTES)] or [b""]


def loopback_registry(reference: str) -> bool:
    """Whether ``reference`` names a registry on loopback, which only this machine reaches."""
    first, slash, _ = reference.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        return False  # Docker Hub
    host = first.rsplit(":", 1)[0] if not first.startswith("[") else first.split("]")[0] + "]"
    return host in ("localhost", "[::1]") or host.startswith("127.")


class SwarmBatch:
    def __init__(
        self,
        image: str,
        inputs: InputsFile,
        settings: BatchSettings,
        record,
        limits: RunLimits,
    ) -> None:
        from docker.errors import DockerException

        self.client = docker_client()
        _require_manager(self.client)
        self.DockerException = DockerException
        local = self.client.images.get(image)
        self.image_id = local.id
        # The pushed NAME@sha256 of this very build when there is one, so that any node can
        # pull it; else the ID, which only this node knows.
        self.task_image = pushed_reference(image, dict(local.labels or {})) or local.id
        self.node_id = self.client.info()["Swarm"]["NodeID"]
        self.inputs = inputs
        self.settings = settings
        self.limits = limits
        self._record: Callable[[dict[str, Any]], None] = record
        self.lock = threading.Lock()
        self.run_id = uuid.uuid4().hex[:12]
        self.labels = {LABEL: self.run_id, "docker-workflow.managed": "true"}
        self.done: set[int] = set()
        self.configs: list = []
        self.service = None
        self.network = None
        self.task_errors: dict[int, str] = {}

    def this_node_only(self) -> bool:
        return (
            self.task_image == self.image_id
            or loopback_registry(self.task_image)
            or self.settings.network == "host"
        )

    # -- inputs in, results out ---------------------------------------------------------------

    def _write_shards(self, round_: _Round) -> None:
        from docker.types import ConfigReference

        for shard, indices in enumerate(round_.shards):
            data = b"".join(self.inputs.indexed(indices))
            for chunk, part in enumerate(_chunks(data)):
                config = self.client.configs.create(
                    name=f"dw-batch-{self.run_id}-r{round_.number}-s{shard}-c{chunk}",
                    data=part,
                    labels=self.labels,
                )
                self.configs.append(config)
                round_.configs.append(
                    ConfigReference(
                        config.id,
                        config.name,
                        filename=f"{INPUTS}/{shard}/{chunk:05d}",
                        uid="0",
                        gid="0",
                        mode=0o444,
                    )
                )

    def take(self, line: bytes) -> None:
        """One result line of a task's log: recorded when its index has none yet."""
        try:
            item = json.loads(line)
        except ValueError:
            return
        index = item.get("index") if isinstance(item, dict) else None
        with self.lock:
            if isinstance(index, int) and index not in self.done:
                self.done.add(index)
                self._record(item)

    # -- the job -------------------------------------------------------------------------------

    def _service(self, round_: _Round):
        from docker.types import Mount, RestartPolicy, ServiceMode

        count = len(round_.shards)
        args = [
            "--batch",
            "--indexed",
            "-j",
            str(self.settings.jobs),
            "--input-file",
            f"{INPUTS}/{{shard}}",
            "--shard-env",
            "WORKFLOW_SHARD",
        ]
        confined = self.limits.swarm_args(self.settings.endpoint)
        tmp_bytes = confined.pop("tmp_bytes")
        env = ["WORKFLOW_SHARD={{.Task.Slot}}", *confined.pop("env")]
        network = self.settings.network
        hosts = {"host.docker.internal": "127.0.0.1"} if network == "host" else None
        if network == "none":
            network = self._isolated_network()
        return self.client.services.create(
            self.task_image,
            args=args,
            name=f"dw-batch-{self.run_id}-r{round_.number}",
            env=env,
            labels=self.labels,
            container_labels=self.labels,
            configs=round_.configs,
            mounts=[Mount("/tmp", None, type="tmpfs", tmpfs_size=tmp_bytes)],
            mode=ServiceMode(
                "replicated-job",
                replicas=count,
                concurrency=min(self.settings.max_concurrent or count, count),
            ),
            restart_policy=RestartPolicy(condition="none"),
            constraints=[f"node.id=={self.node_id}"] if self.this_node_only() else None,
            networks=[network] if network else None,
            hosts=hosts,
            **confined,
        )

    def _isolated_network(self) -> str:
        """``--network none`` for tasks: swarm has no "none" network, and a task without a
        network lands on the default bridge (with outside access). An internal overlay of
        this batch alone gives each task an interface that reaches nothing else."""
        if self.network is None:
            self.network = self.client.networks.create(
                f"dw-batch-{self.run_id}",
                driver="overlay",
                internal=True,
                attachable=False,
                labels=self.labels,
            )
        return self.network.name

    def _down_nodes(self) -> set[str]:
        return {
            node.id
            for node in self.client.nodes.list()
            if node.attrs.get("Status", {}).get("State") == "down"
        }

    def _wait(self, round_: _Round) -> list[dict]:
        """Until every task has finished or sits on a node that is down; the tasks."""
        count = len(round_.shards)
        while True:
            tasks = self.service.tasks()
            down = self._down_nodes()
            finished = [
                t
                for t in tasks
                if t.get("Status", {}).get("State") in TERMINAL or t.get("NodeID") in down
            ]
            if len(finished) >= count:
                for task in tasks:
                    status = task.get("Status", {})
                    if task.get("NodeID") in down and status.get("State") not in TERMINAL:
                        error = "its node went down"
                    elif status.get("State") != "complete":
                        error = status.get("Err") or status.get("State", "?")
                    else:
                        continue
                    self.task_errors[task.get("Slot", 0)] = error
                return tasks
            time.sleep(POLL_SECONDS)

    def _read_final_logs(self, tasks: list[dict]) -> None:
        """Each task's whole log, from the nodes that are up: the lines the follow stream had
        not delivered when the task ended."""
        from docker.errors import DockerException

        down = self._down_nodes()
        for task in tasks:
            if task.get("NodeID") and task["NodeID"] not in down:
                with contextlib.suppress(DockerException, OSError):
                    read_task_log(self.client, task["ID"], self.take)

    def run(self, pending: list[int]) -> None:
        remaining = list(pending)
        rounds = 1 + max(0, self.settings.shard_retries)
        follower = None
        try:
            for number in range(rounds):
                round_ = _Round(number, split(remaining, self.settings.replicas))
                self._write_shards(round_)
                self.service = self._service(round_)
                follower = LogFollower(self.client, self.service.id, self.take).start()
                tasks = self._wait(round_)
                self._read_final_logs(tasks)
                follower.stop()
                follower = None
                self.service.remove()
                self.service = None
                remaining = [i for i in remaining if i not in self.done]
                if not remaining:
                    return
            reason = "; ".join(sorted(set(self.task_errors.values()))) or "no result written"
            for index in remaining:
                self._record(
                    error_record(
                        index,
                        "shard_failed",
                        f"no result after {rounds} attempt(s) of its shard on the swarm: {reason}",
                    )
                )
        except self.DockerException as error:
            raise docker_error("running the batch on the swarm", error) from None
        finally:
            if follower is not None:
                follower.stop()
            self._cleanup()

    def _tasks_gone(self) -> None:
        """Raises until this node's containers of the batch are gone (the engine removes the
        tasks of a removed service a moment later)."""
        label = {"label": f"{LABEL}={self.run_id}"}
        if self.client.containers.list(all=True, filters=label):
            raise self.DockerException("the batch's containers are still there")

    def _cleanup(self) -> None:
        """Remove the service, the configs and the network (a config stays in use, and a
        network busy, until the removed service's tasks are gone)."""
        from docker.errors import DockerException, NotFound

        removals = [lambda: self.service and self.service.remove(), self._tasks_gone]
        removals += [lambda config=config: config.remove() for config in self.configs]
        removals.append(lambda: self.network and self.network.remove())
        for remove in removals:
            for _ in range(40):
                try:
                    remove()
                    break
                except NotFound:
                    break
                except DockerException:
                    time.sleep(0.25)


def run_on_swarm(
    image: str,
    inputs: InputsFile,
    pending: list[int],
    settings: BatchSettings,
    record,
    limits: RunLimits,
) -> None:
    SwarmBatch(image, inputs, settings, record, limits).run(pending)
