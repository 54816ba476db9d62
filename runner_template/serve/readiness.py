"""``GET /readyz``: every LLM server the workflow uses answers and has its models."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from runner_template import http_client
from runner_template.engine import Engine
from runner_template.llm import DEFAULT_ENDPOINT
from runner_template.serve.settings import READY_CACHE_SECONDS, READY_SECONDS


def llm_needs(bundle: dict[str, Any], engine: Engine) -> dict[tuple[str, str], set[str]]:
    """(endpoint, provider) -> the models the workflow (and its sub-workflows) ask it for."""
    parts = [bundle, *(bundle.get("workflows") or {}).values()]
    needs: dict[tuple[str, str], set[str]] = {}
    for part in parts:
        for tool in part.get("tools", {}).values():
            if tool.get("kind") != "llm":
                continue
            endpoint = engine.endpoint_override or tool.get("endpoint") or DEFAULT_ENDPOINT
            provider = engine.provider_override or tool.get("provider") or "ollama"
            needs.setdefault((endpoint, provider), set()).add(tool["model"])
    return needs


def _names(data: Any, provider: str) -> set[str] | None:
    """The model names of a tag list, or None when it does not have the provider's shape."""
    key, name = ("models", "name") if provider == "ollama" else ("data", "id")
    listed = data.get(key) if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return None
    names = {m.get(name) for m in listed if isinstance(m, dict) and isinstance(m.get(name), str)}
    return names | {n.removesuffix(":latest") for n in names}


def check_llm(endpoint: str, provider: str, models: set[str]) -> str | None:
    """What is wrong with one LLM server (None: it answers and has ``models``)."""
    path = "/api/tags" if provider == "ollama" else "/v1/models"
    base = endpoint.rstrip("/")
    if provider == "openai" and base.endswith("/v1"):
        base = base[:-3]
    headers = {}
    key = os.environ.get("OLLAMA_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        reply = http_client.request(
            "GET",
            base + path,
            deadline=time.monotonic() + READY_SECONDS,
            headers=headers,
            attempts=1,
            max_bytes=4 * 1024 * 1024,
        )
    except http_client.HTTPFailure as failure:
        return failure.message
    if reply.status != 200:
        return f"HTTP {reply.status}"
    try:
        names = _names(json.loads(reply.body), provider)
    except (ValueError, RecursionError):
        return "the reply is not JSON"
    if names is None:
        return f"the reply to {path} does not list models"
    missing = sorted(m for m in models if m not in names and f"{m}:latest" not in names)
    return f"missing models: {', '.join(missing)}" if missing else None


class Readiness:
    """The last readiness report, refreshed at most every few seconds by one thread at a time."""

    def __init__(self, bundle: dict[str, Any], engine: Engine) -> None:
        self.needs = llm_needs(bundle, engine)
        self._at = -READY_CACHE_SECONDS
        self._report: tuple[bool, dict[str, Any]] = (False, {})
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if time.monotonic() - self._at < READY_CACHE_SECONDS:
                return self._report
            checks = []
            for (endpoint, provider), models in sorted(self.needs.items()):
                problem = check_llm(endpoint, provider, models)
                checks.append(
                    {
                        "endpoint": http_client.redact(endpoint),
                        "provider": provider,
                        "models": sorted(models),
                        "ok": problem is None,
                        "problem": problem,
                    }
                )
            ok = all(c["ok"] for c in checks)
            self._report = (ok, {"ready": ok, "llm": checks})
            self._at = time.monotonic()
            return self._report
