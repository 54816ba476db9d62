"""What the pipeline leaves in a target's folder, and how later steps read it back.

``analysis.json``, ``bundle.json``, ``lock.json``, ``runner/program/`` and ``runner/engine/``
(each with its ``.digest``) and ``runner/bundle.json``. Light on purpose: the up-to-date checks
of every no-op ``doit`` run read
these, and must not load the pipeline itself to do so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.stages.analysis import Analysis
from runner_template.bundle_format import BUNDLE_FILE

ANALYSIS_FILE = "analysis.json"
LOCK_FILE = "lock.json"
RUNNER_DIR = "runner"
ENGINE_DIR = "engine"
PROGRAM_DIR = "program"  # the engine alone, what --compiler nuitka compiles (shared)
EMPTY_LOCK: dict[str, Any] = {"format": 1, "requirements": [], "platforms": {}}


def digest(data: bytes) -> str:
    """The one content digest of the build (bundles, labels): ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
    def program_dir(self) -> Path:
        return self.out_dir / PROGRAM_DIR

    def program_digest(self) -> str:
        """The content digest of ``program/`` (the same for every workflow)."""
        return (self.program_dir / ".digest").read_text()

    @property
    def entry_point(self) -> Path:
        return self.engine_dir / "main.py"


def read_analysis(out: Path) -> Analysis:
    return Analysis(**json.loads((out / ANALYSIS_FILE).read_text()))


def read_lock(out: Path) -> dict:
    try:
        return json.loads((out / LOCK_FILE).read_text())
    except FileNotFoundError:
        return EMPTY_LOCK


def load_prepared(out: Path) -> Prepared:
    """What the render step left in ``out`` (for the compile and image steps)."""
    analysis = read_analysis(out)
    runner = out / RUNNER_DIR
    engine_digest = (runner / ENGINE_DIR / ".digest").read_text()
    return Prepared(analysis, digest((runner / BUNDLE_FILE).read_bytes()), engine_digest, runner)
