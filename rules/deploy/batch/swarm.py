"""``batch --engine swarm``: the inputs as shards of a replicated job on Docker Swarm.

Each round creates one ``replicated-job`` service with K tasks. Task ``s`` (``{{.Task.Slot}}``,
given to the program as ``WORKFLOW_SHARD``) reads ``shard-s.jsonl`` and appends its results,
line by line, to ``results-s.jsonl``. Swarmkit renders slot 0 of a job as the node's ID, so the
program reads a slot that is not a number as shard 0.

Inputs and results travel through a Docker volume, not Swarm configs: a config holds at most
500 KB and is read-only, while a batch may hold megabytes of inputs (one input may be 1 MB) and
its results must come back. The volume is filled and read through a container of the workflow
image that is created but never started (the image has no shell, and needs none for that). A
local volume is seen only by tasks on this node, so every task is placed on this node (a
``node.id`` constraint).

The tasks run the image by the digest ``build --push`` recorded for the same build
(``rules/registry_push.py``), which any node can pull; without one, by its ID, so no node
tries to pull it from a registry. After a round, the indices without a result (a failed,
killed or rejected task) form the next round, up to ``shard_retries`` times; whatever is still
missing is reported per index, never dropped. The service, the carrier container and the
volume are removed afterwards, also on failure or Ctrl-C.

``--network none``: swarm has no such network, and a task without one lands on the default
bridge, so the batch gets an internal overlay network of its own (no route anywhere else),
removed with the rest.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from rules.deploy.batch.inputs import InputsFile, split
from rules.deploy.batch.results import error_record
from rules.deploy.batch.settings import BatchSettings
from rules.deploy.container import RunLimits
from rules.docker.engine import docker_client, docker_error
from rules.docker.registry_push import pushed_reference
from rules.errors import UserError

WORK = "/data/work"
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


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("work")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o777
        archive.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(f"work/{name}")
            info.size, info.mode = len(data), 0o666
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Round:
    """One job: its shards, its service, and the results read back so far."""

    def __init__(self, number: int, shards: list[list[int]]) -> None:
        self.number = number
        self.shards = shards
        self.offsets = [0] * len(shards)

    def shard_file(self, shard: int | str) -> str:
        return f"r{self.number}-shard-{shard}.jsonl"

    def results_file(self, shard: int | str) -> str:
        return f"r{self.number}-results-{shard}.jsonl"


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
        self.image_id = local.id  # the carrier container's: never pulled
        # The tasks': the pushed NAME@sha256 of this very build when there is one, so that any
        # node can pull it; else the ID, which only this node knows.
        self.task_image = pushed_reference(image, dict(local.labels or {})) or local.id
        self.node_id = self.client.info()["Swarm"]["NodeID"]
        self.inputs = inputs
        self.settings = settings
        self.limits = limits
        self.record: Callable[[dict[str, Any]], None] = record
        self.run_id = uuid.uuid4().hex[:12]
        self.labels = {LABEL: self.run_id, "docker-workflow.managed": "true"}
        self.done: set[int] = set()
        self.volume = None
        self.carrier = None
        self.service = None
        self.network = None
        self.task_errors: dict[int, str] = {}

    # -- the volume and its carrier ----------------------------------------------------------

    def _open_volume(self) -> None:
        self.volume = self.client.volumes.create(f"dw-batch-{self.run_id}", labels=self.labels)
        self.carrier = self.client.containers.create(
            self.image_id,
            command=["--describe"],
            volumes={self.volume.name: {"bind": "/data", "mode": "rw"}},
            labels=self.labels,
        )

    def _write_shards(self, round_: _Round) -> None:
        files = {
            round_.shard_file(number): b"".join(self.inputs.indexed(indices))
            for number, indices in enumerate(round_.shards)
        }
        if not self.carrier.put_archive("/data", _tar(files)):
            raise UserError("writing the batch inputs into the swarm volume failed")

    def _read_results(self, round_: _Round) -> None:
        from docker.errors import NotFound

        for number in range(len(round_.shards)):
            try:
                stream, _ = self.carrier.get_archive(f"{WORK}/{round_.results_file(number)}")
            except NotFound:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.next()
                data = archive.extractfile(member).read() if member else b""
            complete = data[: data.rfind(b"\n") + 1]
            for line in complete[round_.offsets[number] :].splitlines():
                self._take(line)
            round_.offsets[number] = len(complete)

    def _take(self, line: bytes) -> None:
        try:
            item = json.loads(line)
        except ValueError:
            return
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and index not in self.done:
            self.done.add(index)
            self.record(item)

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
            f"{WORK}/{round_.shard_file('{shard}')}",
            "--output-file",
            f"{WORK}/{round_.results_file('{shard}')}",
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
            mounts=[
                Mount("/data", self.volume.name, type="volume"),
                Mount("/tmp", None, type="tmpfs", tmpfs_size=tmp_bytes),
            ],
            mode=ServiceMode(
                "replicated-job",
                replicas=count,
                concurrency=min(self.settings.max_concurrent or count, count),
            ),
            restart_policy=RestartPolicy(condition="none"),
            constraints=[f"node.id=={self.node_id}"],
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
                f"dw-batch-{self.run_id}", driver="overlay", internal=True, labels=self.labels
            )
        return self.network.name

    def _wait(self, round_: _Round) -> None:
        count = len(round_.shards)
        while True:
            tasks = self.service.tasks()
            states = [t.get("Status", {}).get("State") for t in tasks]
            self._read_results(round_)
            finished = [s for s in states if s in TERMINAL]
            if len(finished) >= count:
                for task in tasks:
                    status = task.get("Status", {})
                    if status.get("State") != "complete":
                        slot = task.get("Slot", 0)
                        self.task_errors[slot] = status.get("Err") or status.get("State", "?")
                return
            time.sleep(POLL_SECONDS)

    def run(self, pending: list[int]) -> None:
        remaining = list(pending)
        rounds = 1 + max(0, self.settings.shard_retries)
        round_ = None
        try:
            self._open_volume()
            for number in range(rounds):
                round_ = _Round(number, split(remaining, self.settings.replicas))
                self._write_shards(round_)
                self.service = self._service(round_)
                self._wait(round_)
                self._read_results(round_)
                self.service.remove()
                self.service = None
                remaining = [i for i in remaining if i not in self.done]
                if not remaining:
                    return
            reason = "; ".join(sorted(set(self.task_errors.values()))) or "no result written"
            for index in remaining:
                self.record(
                    error_record(
                        index,
                        "shard_failed",
                        f"no result after {rounds} attempt(s) of its shard on the swarm: {reason}",
                    )
                )
        except self.DockerException as error:
            raise docker_error("running the batch on the swarm", error) from None
        finally:
            self._cleanup(round_)

    def _cleanup(self, round_: _Round | None) -> None:
        """Keep what finished, then remove the service, the carrier, the volume and the
        network."""
        from docker.errors import DockerException

        if round_ is not None and self.carrier is not None:
            with contextlib.suppress(DockerException):
                self._read_results(round_)
        for remove in (
            lambda: self.service and self.service.remove(),
            lambda: self.carrier and self.carrier.remove(force=True),
            lambda: self.volume and self.volume.remove(force=True),
            lambda: self.network and self.network.remove(),
        ):
            for _ in range(20):  # a volume stays busy until the removed tasks are gone
                try:
                    remove()
                    break
                except DockerException:
                    time.sleep(0.5)


def run_on_swarm(
    image: str,
    inputs: InputsFile,
    pending: list[int],
    settings: BatchSettings,
    record,
    limits: RunLimits,
) -> None:
    SwarmBatch(image, inputs, settings, record, limits).run(pending)
