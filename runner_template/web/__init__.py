"""The workflow's page: one set of files for the static web site and a service's playground.

The page (``index.html``, ``app.js``, ``style.css``) builds its form from ``site.json``; in
``pyodide`` mode it runs the workflow in a Web Worker (``worker.js`` and ``host.py`` on Pyodide),
in ``service`` mode it posts the inputs to the service's ``/stream`` and shows the same events.
``rules/stages/web`` writes the static site; serve mode (``--playground``) serves
:func:`playground_files` at ``GET /playground/<name>``. Standard library only, like the rest of
the runner. In an image the page's files are the bytes of a generated module,
``runner_template/web/page_data.py`` (``rules/stages/render.py``): a compiled program has no
package folder to read them from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE_FILES = ("index.html", "app.js", "style.css")
WORKER_FILES = ("worker.js",)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".whl": "application/zip",
}
OLLAMA_DEFAULT = "http://localhost:11434"  # a browser reaches the user's machine


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


def _llm_tools(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [bundle, *bundle.get("workflows", {}).values()]
    return [t for p in parts for t in p.get("tools", {}).values() if t.get("kind") == "llm"]


def site_config(bundle: dict[str, Any], mode: str, **extra: Any) -> dict[str, Any]:
    """``site.json``: the form's schema and the page's defaults, from the bundle.

    The endpoint defaults to the workflow's (its first LLM tool that names one), else Ollama's
    own default; the provider to the tools' when they agree.
    """
    workflow = bundle["workflow"]
    tools = _llm_tools(bundle)
    endpoints = [t["endpoint"] for t in tools if t.get("endpoint")]
    providers = {t.get("provider") or "ollama" for t in tools}
    return {
        "mode": mode,
        "workflow": {
            "id": workflow.get("id"),
            "version": workflow.get("version"),
            "description": workflow.get("description"),
            "inputs": workflow.get("inputs") or {},
            "outputs": sorted(workflow.get("outputs") or {}),
        },
        "endpoint": endpoints[0] if endpoints else OLLAMA_DEFAULT,
        "provider": providers.pop() if len(providers) == 1 else "",
        "uses_llm": bool(tools),
        **extra,
    }


def page_files() -> dict[str, bytes]:
    """The page's own files (the same bytes in the static site and in the playground): from
    the generated module in an image, else from this folder."""
    try:
        from runner_template.web.page_data import FILES  # only in images (see above)
    except ImportError:
        return {name: (HERE / name).read_bytes() for name in PAGE_FILES}
    return dict(FILES)


def playground_files(bundle: dict[str, Any], stream_url: str = "../stream") -> dict[str, bytes]:
    """Everything ``GET /playground/<name>`` serves: the page, and a ``site.json`` in
    ``service`` mode that sends runs to ``stream_url`` (relative to the page)."""
    config = site_config(bundle, "service", stream_url=stream_url)
    return {**page_files(), "site.json": json.dumps(config, ensure_ascii=False).encode("utf-8")}
