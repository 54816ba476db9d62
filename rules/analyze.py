"""Pipeline step 1: what a workflow really needs.

LLM tools, executable tools, Ollama models, the Python modules the tools' code imports (read
with ``ast``, never by running it), the pip packages behind non-standard-library imports, and
whether any endpoint needs TLS (which decides whether ``ssl`` and libcrypto go into the image).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from rules.errors import InvalidInput
from rules.registry import Registry, ResolvedTool, resolve_tools
from rules.spec import Workflow

# Import names whose pip package is called something else.
PIP_NAMES = {
    "yaml": "PyYAML",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
}


@dataclass
class Analysis:
    """The analysis report; ``to_json`` is what ``analyze --json`` prints and the cache stores."""

    workflow_id: str
    version: str | None
    portable: bool
    llm_tools: list[str]
    executable_tools: list[str]
    models: list[str]
    python_modules: list[str]
    pip_packages: list[str]
    endpoints: list[str]
    https: bool
    tools_available: int
    tools_used: int
    inline_code_steps: list[str] = field(default_factory=list)
    tool_origins: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def imported_modules(source: str, label: str, file: str) -> set[str]:
    """Top-level module names that ``source`` imports (absolute imports only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise InvalidInput.single(
            file, label, f"invalid Python: {error.msg} (line {error.lineno})"
        ) from None
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def _declared_pip_packages(workflow: Workflow) -> set[str]:
    declared = set()
    for item in (workflow.data.get("dependencies") or {}).get("pip_packages", []):
        if isinstance(item, str):
            declared.add(item)
        else:
            declared.add(item["name"] + item.get("version", ""))
    return declared


def analyze(
    workflow: Workflow, registry: Registry, model: str | None = None
) -> tuple[Analysis, dict[str, ResolvedTool]]:
    """Analyze ``workflow`` against ``registry``; return the report and the resolved tools."""
    tools = resolve_tools(workflow, registry, model)
    file = str(workflow.path)
    modules: set[str] = set()
    for tool in tools.values():
        if tool.kind == "executable":
            modules |= imported_modules(tool.definition["source"], f"$.tools.{tool.id}", file)
    inline = [s["step_id"] for s in workflow.steps if "code" in s]
    for index, step in enumerate(workflow.steps):
        if "code" in step:
            modules |= imported_modules(step["code"], f"$.steps[{index}].code", file)
    third_party = {m for m in modules if m not in sys.stdlib_module_names}
    pip = {PIP_NAMES.get(m, m) for m in third_party} | _declared_pip_packages(workflow)
    endpoints = sorted(
        {t.definition["endpoint"] for t in tools.values() if t.definition.get("endpoint")}
    )
    embedded = set(workflow.data.get("tools") or {})
    report = Analysis(
        workflow_id=workflow.id,
        version=workflow.data.get("version"),
        portable=workflow.portable,
        llm_tools=sorted(t.id for t in tools.values() if t.kind == "llm"),
        executable_tools=sorted(t.id for t in tools.values() if t.kind == "executable"),
        models=sorted({t.definition["model"] for t in tools.values() if t.kind == "llm"}),
        python_modules=sorted(modules),
        pip_packages=sorted(pip),
        endpoints=endpoints,
        https=any(e.lower().startswith("https://") for e in endpoints),
        tools_available=len(embedded | (set() if workflow.portable else registry.ids())),
        tools_used=len(tools),
        inline_code_steps=inline,
        tool_origins={t.id: t.origin for t in tools.values()},
    )
    return report, tools
