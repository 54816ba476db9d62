"""Webhook callbacks: which URLs a client may name, and delivery with bounded retries."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from runner_template import http_client
from runner_template.serve.runs import RunStore
from runner_template.serve.settings import CALLBACK_ATTEMPTS, CALLBACK_SECONDS


def callback_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a callback (None: it can). A malformed URL is the client's fault."""
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        return "callback_url must be an http(s) URL"
    try:
        parts, _ = http_client.split_url(url)
    except http_client.BadURL as error:
        return f"callback_url: {error}"
    if not parts.hostname or any(c in url for c in "\r\n\t \x00"):
        return "callback_url is not a valid URL"
    allowed = [p for p in os.environ.get("WORKFLOW_CALLBACK_ALLOW", "").split(",") if p]
    if allowed and not any(url.startswith(prefix) for prefix in allowed):
        return "callback_url is not one this service may call (WORKFLOW_CALLBACK_ALLOW)"
    return None


def deliver_callback(runs: RunStore, run_id: str, url: str, result: dict[str, Any]) -> None:
    """POST ``result`` to ``url``: up to :data:`CALLBACK_ATTEMPTS` tries, backing off 1, 2, 4 s."""
    body = json.dumps(result, ensure_ascii=False).encode("utf-8", "backslashreplace")
    for attempt in range(1, CALLBACK_ATTEMPTS + 1):
        runs.callback(run_id, attempts=attempt)
        try:
            reply = http_client.request(
                "POST",
                url,
                deadline=time.monotonic() + CALLBACK_SECONDS,
                body=body,
                headers={"Content-Type": "application/json"},
                attempts=1,
            )
            if 200 <= reply.status < 300:
                runs.callback(run_id, delivered=True, last_error=None)
                return
            problem = f"HTTP {reply.status}"
        except http_client.HTTPFailure as failure:
            problem = failure.message
        runs.callback(run_id, last_error=problem)
        if attempt < CALLBACK_ATTEMPTS:
            time.sleep(2 ** (attempt - 1))
