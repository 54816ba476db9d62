"""How a batch runs (``batch`` options), shared by the local and the Swarm engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchSettings:
    jobs: int = 1
    engine: str = "local"
    replicas: int = 2
    max_concurrent: int | None = None
    endpoint: str | None = None
    network: str | None = None
    retry_failed: bool = False
    shard_retries: int = 2
