"""``workflow --serve``: the workflow as an HTTP service (standard library only).

Routes (docs/RUNNER.md, "Serve mode", has the table):

* ``POST /invoke`` (inputs in, outputs out), ``POST /stream`` (the run's events, SSE or
  NDJSON), ``POST /batch`` (a list of inputs, results in order);
* ``POST /hooks/run`` (202 at once, the result POSTed to a callback; a client may choose the
  run id, idempotently), ``GET /runs/ID``, ``POST /runs/ID/cancel``;
* ``GET /v1/models``, ``POST /v1/chat/completions``: the workflow as an OpenAI model;
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus), ``GET /schema``,
  ``GET /openapi.json``;
* ``GET /playground/<name>`` with ``--playground``: the workflow's page (``runner_template.web``).

Modules, one job each: :mod:`.settings` (limits, statuses), :mod:`.schemas` (JSON Schema,
OpenAPI), :mod:`.runs` (webhook runs), :mod:`.callbacks` (their delivery), :mod:`.readiness`,
:mod:`.metrics`, :mod:`.openai_face`, :mod:`.wire` (deadlines, framing, encoding),
:mod:`.service` (shared state), :mod:`.handler` (a connection), :mod:`.server` (the socket).
"""

from runner_template.serve.server import serve
from runner_template.serve.settings import Settings

__all__ = ["Settings", "serve"]
