"""The service's limits and the HTTP status of each error type (one place for both)."""

from __future__ import annotations

STATUS_OF = {
    "bad_input": 400,
    "tool_failed": 500,
    "internal_error": 500,
    "llm_error": 502,
    "llm_unreachable": 503,
    "step_timeout": 504,
    "canceled": 409,
}
MAX_CONNECTIONS = 256
IDLE_SECONDS = 30.0  # a keep-alive connection may wait this long for its next request
# An /invoke whose steps all run in place waits at most this long for its turn (Service.turns)
TURN_SECONDS = 0.002
WRITE_SECONDS = 30.0  # a client must take each write (a whole reply, an event) within this time
MAX_BATCH = 1000  # inputs in one POST /batch
KEPT_RUNS = 1000  # finished webhook runs kept for GET /runs/ID ...
KEPT_SECONDS = 3600.0  # ... and for at most this long
CALLBACK_ATTEMPTS = 4
CALLBACK_SECONDS = 10.0  # one callback delivery attempt, whole reply included
READY_SECONDS = 3.0  # one readiness check of an LLM server
READY_CACHE_SECONDS = 5.0


class Settings:
    """The service's limits (from the command line); see docs/RUNNER.md, "Serve mode"."""

    def __init__(
        self,
        jobs: int = 4,
        max_body: int = 8 * 1024 * 1024,
        request_timeout: float = 300.0,
        queue_wait: float = 5.0,
        grace: float = 20.0,
        endpoint: str | None = None,
        provider: str | None = None,
        read_timeout: float = 30.0,
        auth_token: str | None = None,
        max_batch: int = MAX_BATCH,
        playground: bool = False,
    ) -> None:
        self.jobs = jobs
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.queue_wait = queue_wait
        self.grace = grace
        self.endpoint = endpoint
        self.provider = provider
        # One deadline for a request's headers and body together, from its first byte: a client
        # that drips them (slow loris) is cut off when it passes, however often it sends a byte.
        self.read_timeout = read_timeout
        # The bearer token every route but /healthz needs (None: no authentication).
        self.auth_token = auth_token
        self.max_batch = max_batch
        # GET /playground/: the workflow's page, running it through /stream (off by default).
        self.playground = playground
