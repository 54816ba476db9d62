"""The analysis report of a workflow: what ``analyze`` prints and the build cache stores.

A module of its own (no imports beyond the standard library) because every no-op ``doit`` run
reads stored reports, and must not pay for loading the analysis machinery to do so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
    api_tools: list[str] = field(default_factory=list)
    optional_modules: list[str] = field(default_factory=list)
    third_party_modules: list[str] = field(default_factory=list)
    packages: dict[str, Any] = field(default_factory=dict)
    sub_workflows: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    cjk_codecs: bool = False
    # Every environment variable the workflow's tools read at run time (``${VAR}`` in an API
    # tool's URL or headers, an LLM tool's key variable): what a deployment must provide.
    environment: list[str] = field(default_factory=list)
    # Every dotted module name the tools' code imports, with who imports it ("tool NAME",
    # "step ID"): the roots of the module layer (rules/stages/module_closure.py) and the names
    # its errors give. ``optional_imports``: those only imported inside try/except ImportError.
    module_users: dict[str, list[str]] = field(default_factory=dict)
    optional_imports: list[str] = field(default_factory=list)
    # Who may need ``unicodedata`` at run time, which the shared program leaves to the layer
    # (rules/stages/analyze.py ``unicodedata_users``): "tool NAME", "step ID", "input NAME".
    unicodedata_users: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
