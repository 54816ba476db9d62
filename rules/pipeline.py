"""The host-side steps, each a function of files to files: analyze, shake, render.

The doit tasks (``rules/tasks.py``) call them one by one with caching around them; the CLI's
``analyze`` and ``run --local`` call :func:`prepare`, which runs all three. Outputs live in
``cache/targets/<name>/`` (``name``: the target's name, by default the workflow file's stem):
``analysis.json``, ``bundle.json``, ``runner/engine/`` and ``runner/bundle.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rules.analyze import Analysis, analyze
from rules.fsutil import atomic_write
from rules.paths import target_dir
from rules.registry import Registry
from rules.render import ENGINE_DIR, render
from rules.shake import canonical_json, digest, shake
from rules.spec import Workflow, load_workflow

ANALYSIS_FILE = "analysis.json"
BUNDLE_FILE = "bundle.json"
RUNNER_DIR = "runner"


@dataclass(frozen=True)
class Prepared:
    """A workflow taken through analyze, shake and render."""

    analysis: Analysis
    bundle_digest: str
    engine_digest: str
    out_dir: Path  # the runner folder: engine/ and bundle.json

    @property
    def bundle_path(self) -> Path:
        return self.out_dir / BUNDLE_FILE

    @property
    def engine_dir(self) -> Path:
        return self.out_dir / ENGINE_DIR

    @property
    def entry_point(self) -> Path:
        return self.engine_dir / "main.py"


def analyze_file(path: Path, tools_dirs: list[Path] | None = None, model: str | None = None):
    """Load and analyze ``path``: ``(workflow, analysis, resolved tools)``."""
    workflow: Workflow = load_workflow(path)
    registry = Registry.for_workflow(workflow.path, tools_dirs)
    analysis, tools = analyze(workflow, registry, model)
    return workflow, analysis, tools


def _write_analysis(out: Path, analysis: Analysis) -> None:
    atomic_write(out / ANALYSIS_FILE, json.dumps(analysis.to_json(), indent=2).encode())


def _write_bundle(out: Path, workflow: Workflow, tools) -> None:
    atomic_write(out / BUNDLE_FILE, canonical_json(shake(workflow, tools)))


def step_analyze(path: Path, out: Path, tools_dirs=None, model=None) -> Analysis:
    _, analysis, _ = analyze_file(path, tools_dirs, model)
    _write_analysis(out, analysis)
    return analysis


def step_shake(path: Path, out: Path, tools_dirs=None, model=None) -> None:
    workflow, _, tools = analyze_file(path, tools_dirs, model)
    _write_bundle(out, workflow, tools)


def read_analysis(out: Path) -> Analysis:
    return Analysis(**json.loads((out / ANALYSIS_FILE).read_text()))


def step_render(out: Path) -> Prepared:
    analysis = read_analysis(out)
    bundle = (out / BUNDLE_FILE).read_bytes()
    engine_digest, _ = render(analysis.python_modules, analysis.https, bundle, out / RUNNER_DIR)
    return Prepared(analysis, digest(bundle), engine_digest, out / RUNNER_DIR)


def load_prepared(out: Path) -> Prepared:
    """What the render step left in ``out`` (for the compile and image steps)."""
    analysis = read_analysis(out)
    runner = out / RUNNER_DIR
    engine_digest = (runner / ENGINE_DIR / ".digest").read_text()
    return Prepared(analysis, digest((runner / BUNDLE_FILE).read_bytes()), engine_digest, runner)


def default_name(path: Path) -> str:
    return Path(path).stem


def prepare(
    path: Path,
    tools_dirs: list[Path] | None = None,
    model: str | None = None,
    name: str | None = None,
) -> Prepared:
    """Run analyze, shake and render for ``path`` into ``cache/targets/<name>/``.

    One load and analysis serves both files here; the doit tasks run the steps separately.
    """
    out = target_dir(name or default_name(path))
    workflow, analysis, tools = analyze_file(path, tools_dirs, model)
    _write_analysis(out, analysis)
    _write_bundle(out, workflow, tools)
    return step_render(out)
