"""The declarations of ``dodo.py``: image targets, Bazel style.

``workflow_image(NAME, WORKFLOW, ...)`` declares one image; ``default_targets("workflows")``
declares one per ``*.json`` in a folder, named after the file. ``rules/graph/tasks.py`` turns the
declared targets into doit tasks.

Each target writes into its own folder, ``cache/targets/<NAME>-<digest>``: the digest covers
the workflow file's path and the options that change what is analyzed (``model``, ``tools``),
so ``a/wf.json`` and ``b/wf.json``, or one workflow built for two models, never share (and never
overwrite) each other's outputs, and two runs at once stay independent. Paths inside the folder
that holds the cache count relative to it, so a clone with a restored ``cache/`` finds its
targets where it left them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from rules.errors import UserError
from rules.graph.options import BuildOptions
from rules.paths import cache_dir, target_dir
from rules.platforms import parse_platforms
from rules.stages.image_names import check_reference

TARGET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TARGETS: dict[str, Target] = {}


def safe_target_name(text: str) -> str:
    """A target name from any text (a file stem): safe as a folder and a doit task name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).lstrip("._-")[:100]
    return name or "workflow"


@dataclass
class Target:
    """One image to build: a workflow and its build options."""

    name: str
    workflow: Path
    options: BuildOptions = field(default_factory=BuildOptions)
    force: bool = False  # build the image again even if one of this content has the tag

    def __post_init__(self) -> None:
        if not TARGET_NAME_RE.match(self.name):
            raise UserError(
                f"target name {self.name!r}: use letters, digits, '.', '_' and '-' (it names"
                " doit tasks and a cache folder)"
            )

    @property
    def key(self) -> str:
        """``NAME-<digest>``: the folder of this target's outputs under ``cache/targets``."""
        facts = {
            "workflow": _stable_path(self.workflow),
            "model": self.options.model,
            "tools": [_stable_path(p) for p in self.options.tools_dirs or []],
        }
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"

    @property
    def out(self) -> Path:
        return target_dir(self.key)


def _stable_path(path: Path) -> str:
    """Relative to the folder that holds the cache when inside it, else absolute."""
    resolved = Path(path).resolve()
    base = cache_dir().parent
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)


def workflow_image(
    name: str,
    workflow: str | Path,
    *,
    platforms: list[str] | None = None,
    compiler: str = "nuitka",
    runtime: str = "scratch",
    builder_image: str | None = None,
    tag: str | None = None,
    push: bool = False,
    oci: str | Path | None = None,
    model: str | None = None,
    tools: list[str | Path] | None = None,
    cross: str = "auto",
) -> Target:
    """Declare an image target (the ``dodo.py`` macro)."""
    with _declaring(f"workflow_image({name!r})"):
        options = BuildOptions(
            platforms=parse_platforms(",".join(platforms)) if platforms else parse_platforms(None),
            compiler=compiler,
            runtime=runtime,
            builder_image=builder_image,
            tag=check_reference(tag) if tag else None,
            push=push,
            oci_path=Path(oci).resolve() if oci else None,
            tools_dirs=[Path(t) for t in tools] if tools else None,
            model=model,
            cross=cross,
        )
    target = Target(name, Path(workflow), options)
    TARGETS[name] = target
    return target


@contextmanager
def _declaring(what: str) -> Iterator[None]:
    """A mistake in a declaration (``dodo.py``, ``doit VAR=value``) as doit's own one-line
    error (``ERROR: ...``, exit 3) instead of a traceback from inside doit's loader."""
    try:
        yield
    except UserError as error:
        from doit.exceptions import InvalidDodoFile

        raise InvalidDodoFile(f"{what}: {error}") from None


def default_targets(folder: str | Path = "workflows") -> None:
    """One target per ``*.json`` in ``folder``, named after the file, unless that name is taken."""
    for path in sorted(Path(folder).glob("*.json")):
        name = safe_target_name(path.stem)
        if name not in TARGETS:
            workflow_image(name, path)


def apply_command_line(target: Target, get_var) -> Target:
    """``doit VAR=value`` overrides, for every target (``get_var``: doit's)."""
    options = target.options
    if get_var("platforms"):
        with _declaring("doit platforms=..."):
            options = replace(options, platforms=parse_platforms(get_var("platforms")))
    for key in ("compiler", "runtime", "builder_image", "model", "cross"):
        if get_var(key):
            options = replace(options, **{key: get_var(key)})
    return replace(target, options=options)
