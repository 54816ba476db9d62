"""``batch --engine swarm``: the inputs as shards, each a one-task ``replicated-job`` service on
Docker Swarm, with no file system shared between the nodes.

The pending inputs are split into ``--replicas`` K shards; up to ``--max-concurrent`` shard
jobs run at once (default all). One job per shard, not one job of K tasks: swarmkit's slot
numbers of a job's tasks are not always 0..K-1 (seen: two tasks with slot 0), so a task could
not be trusted to find its shard by ``{{.Task.Slot}}``; and each node then holds only the
inputs of the shards it runs. What travels, and how:

* **Inputs**: Swarm configs. A config holds at most 500 KB, so a shard's ``--indexed`` lines are
  cut into chunks of :data:`CHUNK_BYTES` (one input of megabytes spans several), each a config
  mounted at ``/in/<chunk>``; the program reads the folder ``/in`` as one stream in name order.
  While a batch runs, its inputs live in the swarm's Raft store: megabytes, not gigabytes.
* **Results**: the tasks' logs. The program writes its result lines to stdout; they are read
  while the tasks run and once more per task when it ends (``swarm_logs``).
* **The image**: the digest ``build --push`` recorded for the same build
  (``rules/docker/registry_push.py``), which every node pulls from the registry. Without one,
  or when that registry is on loopback (reachable from this machine only), or with
  ``--network host`` (this machine's network), the tasks are placed on this node.

A node that goes down mid-run loses nothing: what its tasks delivered is kept, and its tasks
count as ended as soon as the node is ``down`` (Swarm would report them only much later). When
a task ends (failed, killed, rejected, lost, or done without a line for every input), the
indices of its shard without a result run again at once, as a job of their own, on the nodes
that are up, while the other shards go on; a shard gets ``1 + shard_retries`` attempts, and
whatever is still missing then is reported per index, never dropped. Every index is taken
once, however often its line is read. The services, the configs and the network are removed
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
POLL_SECONDS = 0.5
LABEL = "docker-workflow.batch"
ATTEMPT_LABEL = "docker-workflow.batch.attempt"  # 1, then 2... for a shard run again


def _require_manager(client) -> None:
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise UserError(
            "--engine swarm needs this Docker engine to be a swarm manager: run 'docker swarm"
            " init' (a single machine is a swarm of one), or use --engine local"
        )


class _Round:
    """One shard's job: its indices, the configs that carry them, its attempt (a shard's first
    run is 1; what its task leaves without results runs again as a new job, attempt + 1), the
    tasks whose end was handled and the errors that made the shard run again."""

    def __init__(self, number: int, shard: list[int], attempt: int, errors: set[str]) -> None:
        self.number = number
        self.shard = shard
        self.attempt = attempt
        self.configs: list = []
        self.service = None
        self.follower: LogFollower | None = None
        self.handled: set[str] = set()
        self.errors = set(errors)


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
        self.services: list = []
        self.next_number = 0
        self.network = None

    def this_node_only(self) -> bool:
        return (
            self.task_image == self.image_id
            or loopback_registry(self.task_image)
            or self.settings.network == "host"
        )

    # -- inputs in, results out ---------------------------------------------------------------

    def _write_shard(self, round_: _Round) -> None:
        from docker.types import ConfigReference

        data = b"".join(self.inputs.indexed(round_.shard))
        for chunk, part in enumerate(_chunks(data)):
            config = self.client.configs.create(
                name=f"dw-batch-{self.run_id}-r{round_.number}-c{chunk}",
                data=part,
                labels=self.labels,
            )
            self.configs.append(config)
            round_.configs.append(
                ConfigReference(
                    config.id,
                    config.name,
                    filename=f"{INPUTS}/{chunk:05d}",
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

        args = [
            "--batch",
            "--indexed",
            "-j",
            str(self.settings.jobs),
            "--input-file",
            INPUTS,
        ]
        confined = self.limits.swarm_args(self.settings.endpoint)
        tmp_bytes = confined.pop("tmp_bytes")
        env = confined.pop("env")
        network = self.settings.network
        hosts = {"host.docker.internal": "127.0.0.1"} if network == "host" else None
        if network == "none":
            network = self._isolated_network()
        return self.client.services.create(
            self.task_image,
            args=args,
            name=f"dw-batch-{self.run_id}-r{round_.number}",
            env=env,
            labels={**self.labels, ATTEMPT_LABEL: str(round_.attempt)},
            container_labels=self.labels,
            configs=round_.configs,
            mounts=[Mount("/tmp", None, type="tmpfs", tmpfs_size=tmp_bytes)],
            mode=ServiceMode("replicated-job", replicas=1, concurrency=1),
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

    def _start(self, shard: list[int], attempt: int, errors: set[str]) -> _Round:
        round_ = _Round(self.next_number, shard, attempt, errors)
        self.next_number += 1
        self._write_shard(round_)
        round_.service = self._service(round_)
        self.services.append(round_.service)
        round_.follower = LogFollower(self.client, round_.service.id, self.take).start()
        return round_

    def _task_ended(self, round_: _Round, task: dict, down: set[str]) -> list[int]:
        """A task that has finished or whose node is down: its whole log read (when its node
        is up); the indices it left without a result, to run again (reported instead, per
        index, when the shard has had every attempt)."""
        from docker.errors import DockerException

        status = task.get("Status", {})
        lost = task.get("NodeID") in down and status.get("State") not in TERMINAL
        if task.get("NodeID") and not lost:
            with contextlib.suppress(DockerException, OSError):
                read_task_log(self.client, task["ID"], self.take)
        missing = [i for i in round_.shard if i not in self.done]
        if not missing:
            return []
        if lost:
            round_.errors.add("its node went down")
        elif status.get("State") == "complete":
            round_.errors.add("its task ended without a result for every input")
        else:
            round_.errors.add(status.get("Err") or status.get("State", "?"))
        if round_.attempt < 1 + max(0, self.settings.shard_retries):
            return missing
        reason = "; ".join(sorted(round_.errors))
        for index in missing:
            self._record(
                error_record(
                    index,
                    "shard_failed",
                    f"no result after {round_.attempt} attempt(s) of its shard on the swarm:"
                    f" {reason}",
                )
            )
        return []

    def run(self, pending: list[int]) -> None:
        """Start shard jobs while fewer than ``max_concurrent`` run; a shard whose task ended
        with indices left over goes first in the queue again, so it runs again at once."""
        queue = [(shard, 1, set()) for shard in split(pending, self.settings.replicas)]
        limit = max(1, self.settings.max_concurrent or len(queue))
        active: list[_Round] = []
        try:
            while queue or active:
                while queue and len(active) < limit:
                    active.append(self._start(*queue.pop(0)))
                time.sleep(POLL_SECONDS)
                down = self._down_nodes()
                for round_ in list(active):
                    for task in round_.service.tasks():
                        state = task.get("Status", {}).get("State")
                        ended = state in TERMINAL or task.get("NodeID") in down
                        if ended and task["ID"] not in round_.handled:
                            round_.handled.add(task["ID"])
                            missing = self._task_ended(round_, task, down)
                            if missing:
                                queue.insert(0, (missing, round_.attempt + 1, round_.errors))
                    if round_.handled:
                        round_.follower.stop()
                        round_.service.remove()
                        self.services.remove(round_.service)
                        active.remove(round_)
        except self.DockerException as error:
            raise docker_error("running the batch on the swarm", error) from None
        finally:
            for round_ in active:
                round_.follower.stop()
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

        removals = [lambda service=service: service.remove() for service in self.services]
        removals.append(self._tasks_gone)
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
