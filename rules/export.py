"""``docker-workflow export``: turn a lightweight workflow into a portable one.

The result names no registry: every tool its steps use is embedded under ``tools`` in the flat
portable format, and ``portable`` is true, so the file builds the same on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rules.fsutil import atomic_write
from rules.pipeline import analyze_file
from rules.registry import ResolvedTool


def portable_tool(tool: ResolvedTool) -> dict[str, Any]:
    """A normalized tool written back in the embedded (flat) format."""
    definition = {
        k: v for k, v in tool.definition.items() if v is not None and k not in ("id", "kind")
    }
    embedded: dict[str, Any] = {"tool_id": tool.id, "type": tool.kind}
    if "source" in definition:
        definition["code"] = definition.pop("source")
    embedded.update(definition)
    return embedded


def export_portable(
    path: Path, out_dir: Path, tools_dirs: list[Path] | None = None, model: str | None = None
) -> Path:
    workflow, _, tools = analyze_file(path, tools_dirs, model)
    data = dict(workflow.data)
    data["portable"] = True
    data["tools"] = {tool_id: portable_tool(tool) for tool_id, tool in tools.items()}
    data.pop("dependencies", None)
    target = out_dir / f"{workflow.id}.json"
    atomic_write(target, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return target
