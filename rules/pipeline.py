"""The host-side steps, each a function of files to files: analyze, shake, lock, render.

The doit tasks (``rules/tasks.py``) call them one by one with caching around them, and every
command (``build``, ``run``, ``run --local``, ``analyze``, ``export``) goes through those tasks, so
one graph writes ``cache/targets/``. Outputs of a target live in its folder: ``analysis.json``,
``bundle.json``, ``lock.json``, ``runner/engine/`` and ``runner/bundle.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rules.analyze import Analysis, analyze_tree
from rules.fsutil import atomic_write
from rules.lock import EMPTY_LOCK, make_lock
from rules.render import ENGINE_DIR, render
from rules.shake import canonical_json, digest, shake
from rules.subworkflows import WorkflowNode, load_tree

ANALYSIS_FILE = "analysis.json"
BUNDLE_FILE = "bundle.json"
LOCK_FILE = "lock.json"
RUNNER_DIR = "runner"


@dataclass(frozen=True)
class Prepared:
    """A workflow taken through analyze, shake, lock and render."""

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
    """Load and analyze ``path`` with its sub-workflows: ``(tree, analysis, tools by node)``."""
    tree: WorkflowNode = load_tree(Path(path), tools_dirs)
    analysis, tools = analyze_tree(tree, model)
    return tree, analysis, tools


def step_analyze(path: Path, out: Path, tools_dirs=None, model=None) -> Analysis:
    _, analysis, _ = analyze_file(path, tools_dirs, model)
    atomic_write(out / ANALYSIS_FILE, json.dumps(analysis.to_json(), indent=2).encode())
    return analysis


def step_shake(path: Path, out: Path, tools_dirs=None, model=None) -> None:
    tree, _, tools = analyze_file(path, tools_dirs, model)
    atomic_write(out / BUNDLE_FILE, canonical_json(shake(tree, tools)))


def read_analysis(out: Path) -> Analysis:
    return Analysis(**json.loads((out / ANALYSIS_FILE).read_text()))


def read_lock(out: Path) -> dict:
    try:
        return json.loads((out / LOCK_FILE).read_text())
    except FileNotFoundError:
        return EMPTY_LOCK


def step_lock(out: Path, platforms: list[str]) -> dict:
    """Resolve the analysis' packages for ``platforms`` (``lock.json``; cached by content)."""
    analysis = read_analysis(out)
    main_file = analysis.files[0] if analysis.files else analysis.workflow_id
    lock = make_lock(analysis.packages, platforms, main_file)
    atomic_write(out / LOCK_FILE, json.dumps(lock, indent=2, sort_keys=True).encode())
    return lock


def step_render(out: Path) -> Prepared:
    analysis = read_analysis(out)
    bundle = (out / BUNDLE_FILE).read_bytes()
    modules = [*analysis.python_modules, *analysis.optional_modules]
    engine_digest, _ = render(
        modules, analysis.https, bundle, out / RUNNER_DIR, read_lock(out), analysis.cjk_codecs
    )
    return Prepared(analysis, digest(bundle), engine_digest, out / RUNNER_DIR)


def load_prepared(out: Path) -> Prepared:
    """What the render step left in ``out`` (for the compile and image steps)."""
    analysis = read_analysis(out)
    runner = out / RUNNER_DIR
    engine_digest = (runner / ENGINE_DIR / ".digest").read_text()
    return Prepared(analysis, digest((runner / BUNDLE_FILE).read_bytes()), engine_digest, runner)
