"""The host-side steps, each a function of files to files: analyze, shake, lock, render.

The doit tasks (``rules/graph/tasks.py``) call them one by one with caching around them, and every
command (``build``, ``run``, ``run --local``, ``analyze``, ``export``) goes through those tasks, so
one graph writes ``cache/targets/``. Outputs of a target live in its folder: ``analysis.json``,
``bundle.json``, ``lock.json``, ``runner/engine/`` and ``runner/bundle.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rules.files.subworkflows import WorkflowNode, load_tree
from rules.fsutil import atomic_write
from rules.stages.analysis import Analysis
from rules.stages.analyze import analyze_tree
from rules.stages.lock import make_lock
from rules.stages.prepared import (
    ANALYSIS_FILE,
    LOCK_FILE,
    RUNNER_DIR,
    Prepared,
    digest,
    read_analysis,
    read_lock,
)
from rules.stages.render import render
from rules.stages.shake import canonical_json, shake
from runner_template.bundle_format import BUNDLE_FILE


def analyze_file(path: Path, tools_dirs: list[Path] | None = None, model: str | None = None):
    """Load and analyze ``path`` with its sub-workflows: ``(tree, analysis, tools by node)``."""
    tree: WorkflowNode = load_tree(Path(path), tools_dirs)
    analysis, tools = analyze_tree(tree, model)
    return tree, analysis, tools


def step_analyze(path: Path, out: Path, tools_dirs=None, model=None, loaded=None) -> Analysis:
    """``analysis.json``; the loaded tree and tools are left in ``loaded`` (a dict the graph
    keeps for one run) for the shake of the same target, which then does not load them again."""
    tree, analysis, tools = analyze_file(path, tools_dirs, model)
    atomic_write(out / ANALYSIS_FILE, json.dumps(analysis.to_json(), indent=2).encode())
    if loaded is not None:
        loaded[Path(out)] = (tree, tools)
    return analysis


def step_shake(path: Path, out: Path, tools_dirs=None, model=None, loaded=None) -> None:
    """``bundle.json``, from what the analysis of this run loaded, else loaded here."""
    kept = loaded.pop(Path(out), None) if loaded is not None else None
    if kept is None:
        tree, _, tools = analyze_file(path, tools_dirs, model)
    else:
        tree, tools = kept
    atomic_write(out / BUNDLE_FILE, canonical_json(shake(tree, tools)))


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
