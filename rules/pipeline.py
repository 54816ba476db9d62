"""The host-side pipeline in one call: load, analyze, shake, render.

The CLI and the doit tasks both go through these functions, so there is one implementation of
each step; doit adds caching around them, the CLI calls them directly for ``analyze`` and
``run --local``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rules.analyze import Analysis, analyze
from rules.fsutil import atomic_write
from rules.paths import workflow_dir
from rules.registry import Registry
from rules.render import render
from rules.shake import canonical_json, digest, shake
from rules.spec import Workflow, load_workflow


@dataclass(frozen=True)
class Prepared:
    """A workflow taken through analyze, shake and render."""

    workflow: Workflow
    analysis: Analysis
    bundle_digest: str
    engine_digest: str
    out_dir: Path
    entry_point: Path

    @property
    def bundle_path(self) -> Path:
        return self.out_dir / "bundle.json"


def analyze_file(path: Path, tools_dirs: list[Path] | None = None, model: str | None = None):
    """Load and analyze ``path``: ``(workflow, analysis, resolved tools)``."""
    workflow = load_workflow(path)
    registry = Registry.for_workflow(workflow.path, tools_dirs)
    analysis, tools = analyze(workflow, registry, model)
    return workflow, analysis, tools


def prepare(path: Path, tools_dirs: list[Path] | None = None, model: str | None = None) -> Prepared:
    """Run analyze, shake and render for ``path`` into ``cache/workflows/<id>/``."""
    workflow, analysis, tools = analyze_file(path, tools_dirs, model)
    bundle_bytes = canonical_json(shake(workflow, tools))
    out_dir = workflow_dir(workflow.id)
    atomic_write(out_dir / "analysis.json", json.dumps(analysis.to_json(), indent=2).encode())
    runner_dir = out_dir / "runner"
    engine_digest, entry = render(analysis.python_modules, analysis.https, bundle_bytes, runner_dir)
    return Prepared(workflow, analysis, digest(bundle_bytes), engine_digest, runner_dir, entry)
