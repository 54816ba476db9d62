"""One description of a locked-down workflow container, rendered for each place it runs.

The spec's "secure run": a read-only root file system, a small in-memory ``/tmp``, every
capability dropped, no privilege escalation, a process limit, a memory limit, an optional CPU
limit, and the environment the user asked for (``-e``, ``--provider``) on top of the keys
forwarded from here and the endpoint. :class:`RunLimits` holds it once; ``docker_run_args``
renders it for a container of this engine (``run``, ``serve``, ``batch``), ``swarm_args`` for a
Swarm service's tasks (``batch --engine swarm``), ``k8s_security_context`` and ``k8s_tmp_volume``
for a Kubernetes pod. Nothing here talks to Docker: the renderings are plain data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from rules.errors import InputProblem
from runner_template.redaction import register_secret

FORWARDED_ENV = ("OLLAMA_API_KEY", "LLM_PROVIDER")  # passed on when set here
NOT_SECRET = ("OLLAMA_ENDPOINT", "LLM_PROVIDER")  # settings, not credentials
TMP_BYTES = 64 * 1024 * 1024
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(text: str) -> int:
    """Docker's memory grammar (``512m``, ``1g``, ``65536``: 1024-based units) as bytes."""
    match = re.fullmatch(r"(\d+)([bkmg]?)", text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InputProblem(f"--memory {text!r}: write a size such as 512m or 1g")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class RunLimits:
    """How a workflow container is confined (the ``--memory``, ``--cpus``, ``--pids-limit``,
    ``-e`` and ``--provider`` options), wherever it runs."""

    memory: str = "512m"
    cpus: float | None = None
    pids: int = 256
    read_only: bool = True
    tmp_bytes: int = TMP_BYTES
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, endpoint: str | None) -> dict[str, str]:
        """The container's environment: forwarded keys, the endpoint, then ``-e`` settings.

        Every value but the endpoint's (whose credential the redaction finds by its ``@``) and
        the provider's is registered as a secret: a Docker error or a log line that quotes the
        container's or the Swarm service's spec prints ``***`` in its place."""
        env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
        if endpoint:
            env["OLLAMA_ENDPOINT"] = endpoint
        env.update(self.env)
        for name, value in env.items():
            if name not in NOT_SECRET:
                register_secret(value)
        return env

    def docker_run_args(self) -> dict:
        """Host-config arguments of the Docker SDK for a container of this engine."""
        args: dict = {
            "read_only": self.read_only,
            "mem_limit": self.memory,
            "pids_limit": self.pids,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmp_bytes // 1024 // 1024}m"},
        }
        if self.cpus is not None:
            args["nano_cpus"] = int(self.cpus * 1e9)
        return args

    def swarm_args(self, endpoint: str | None) -> dict:
        """``services.create`` arguments for a Swarm service's tasks (the SDK's names; the
        ``/tmp`` mount is given as its size, for the caller's ``Mount``)."""
        limits: dict = {"MemoryBytes": memory_bytes(self.memory), "Pids": self.pids}
        if self.cpus is not None:
            limits["NanoCPUs"] = int(self.cpus * 1e9)
        return {
            "env": [f"{name}={value}" for name, value in self.environment(endpoint).items()],
            "resources": {"Limits": limits},
            "read_only": self.read_only,
            "cap_drop": ["ALL"],
            "tmp_bytes": self.tmp_bytes,
        }

    def k8s_security_context(self) -> dict:
        """A pod container's ``securityContext``."""
        return {
            "readOnlyRootFilesystem": self.read_only,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }

    def k8s_tmp_volume(self) -> dict:
        """The pod's in-memory ``/tmp``."""
        size = f"{self.tmp_bytes // 1024 // 1024}Mi"
        return {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def parse_env(items: list[str] | None) -> dict[str, str]:
    """``-e NAME=VALUE`` sets a variable; ``-e NAME`` passes this environment's value (and
    nothing when it is unset, as ``docker run`` does)."""
    env: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise InputProblem(f"-e/--env {name!r}: write NAME=VALUE or NAME (a valid NAME)")
        if sep:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
    return env
