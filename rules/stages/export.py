"""``docker-workflow export``: turn a lightweight workflow into a portable one.

The result names no registry and no other file: every tool its steps use is embedded under
``tools`` in the original's ``ToolDefinition`` form (``source_code``, ``requirements``, ...),
every sub-workflow file is embedded as a ``workflow_spec`` (exported the same way), ``portable``
is true, and ``dependencies`` (pip packages included) are kept, so the file builds the same on
any machine. The output never replaces its source, and is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rules.errors import InvalidInput, UserError
from rules.files.registry import ResolvedTool
from rules.files.subworkflows import WorkflowNode
from rules.fsutil import atomic_write
from rules.stages.pipeline import analyze_file


def portable_tool(tool: ResolvedTool) -> dict[str, Any]:
    """A normalized tool written back in the embedded (flat) format."""
    definition = {
        k: v for k, v in tool.definition.items() if v is not None and k not in ("id", "kind")
    }
    embedded: dict[str, Any] = {"tool_id": tool.id, "type": tool.kind}
    if "source" in definition:
        definition["source_code"] = definition.pop("source")
    if "num_predict" in definition:
        definition["max_tokens"] = definition.pop("num_predict")
    embedded.update(definition)
    if tool.requirements:
        embedded["requirements"] = list(tool.requirements)
    return embedded


def _portable(node: WorkflowNode, tools_by_node: dict[int, dict[str, ResolvedTool]]) -> dict:
    data = json.loads(json.dumps(node.workflow.data))  # a deep copy
    data["portable"] = True
    data["tools"] = {
        tool_id: portable_tool(tool) for tool_id, tool in tools_by_node[id(node)].items()
    }
    for index, child in node.children.items():
        step = data["steps"][index]
        step.pop("workflow_path", None)
        step["workflow_spec"] = _portable(child, tools_by_node)
    return data


def _check_output(source: Path, out_dir: Path, target: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: is a file; -o/--output takes a folder to write into")
    if target.exists() and target.resolve() == source.resolve():
        raise UserError(
            f"{target}: exporting into the workflow's own folder would overwrite the source:"
            " choose another -o/--output folder"
        )
    if target.exists() and not target.is_file():
        raise UserError(f"{target}: exists and is not a file")


def export_portable(
    path: Path, out_dir: Path, tools_dirs: list[Path] | None = None, model: str | None = None
) -> Path:
    tree, analysis, tools_by_node = analyze_file(path, tools_dirs, model)
    target = out_dir / f"{analysis.workflow_id}.json"
    _check_output(path, out_dir, target)
    data = _portable(tree, tools_by_node)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        atomic_write(target, text.encode("utf-8"))
    except OSError as error:
        raise UserError(f"{target}: cannot write: {error.strerror}") from None
    except UnicodeEncodeError as error:  # analysis refuses lone surrogates; kept as a guard
        raise InvalidInput.single(str(path), "$", f"not valid Unicode: {error}") from None
    return target
