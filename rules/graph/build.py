"""The CLI's way into the graph: build an image, or prepare a runner, for one workflow file.

The CLI and ``doit`` share one graph (``rules/graph/tasks.py``) and one cache: a step whose outputs
are current for the same inputs is skipped, so a second build of an unchanged workflow does no
work, and a prompt edit only rebuilds the image's top layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rules.errors import InvalidInput
from rules.fsutil import BadPath, resolve_name
from rules.graph.options import BuildOptions, image_request
from rules.graph.run import build_targets
from rules.graph.targets import Target, safe_target_name
from rules.paths import cache_root
from rules.stages.prepared import Prepared, load_prepared


@dataclass(frozen=True)
class BuildResult:
    prepared: Prepared
    tag: str
    compiled: dict[str, Path]
    layers: dict[str, Path]  # platform -> the module layer (none for compilers without one)


def target_for(path: Path, options: BuildOptions, name: str | None = None) -> Target:
    """The graph target of a workflow file given on the command line (named after the file).

    A path that cannot be resolved (a link loop, a NUL, an over-long name) is refused here in
    one line: every step of the graph resolves it, inside doit, which would print tracebacks.
    """
    try:
        resolve_name(Path.cwd(), str(path))
    except BadPath as error:
        raise InvalidInput.single(str(path), "$", f"the workflow file {error}") from None
    return Target(name or safe_target_name(Path(path).stem), Path(path), options)


def prepare(
    path: Path,
    tools_dirs: list[Path] | None = None,
    model: str | None = None,
    platforms: list[str] | None = None,
    cache: Path | None = None,
) -> Prepared:
    """Analyze, shake, lock and render ``path`` through the graph; no Docker involved."""
    options = BuildOptions(tools_dirs=tools_dirs, model=model, cache=cache)
    if platforms:
        options = replace(options, platforms=platforms)
    target = target_for(path, options)
    with cache_root(options.cache):
        build_targets([target], step="render", quiet=True)
        return load_prepared(target.out)


def build_workflow(
    path: Path, options: BuildOptions, name: str | None = None, force: bool = False
) -> BuildResult:
    """Build the image of the workflow at ``path`` through the doit graph (shared with ``doit``).

    Steps whose outputs are current are skipped; the first failing step's error is raised (the
    workflow's errors come first: the Docker steps run, and check the engine, after them).
    ``force`` builds the image again even when one with the same content carries the tag
    (compiles stay content-addressed: ``DOCKER_WORKFLOW_NO_CACHE=1`` recompiles for real).
    """
    from rules.graph.tasks import compile_marker_dir, target_layers

    target = replace(target_for(path, options, name), force=force)
    with cache_root(options.cache):
        build_targets([target])
        prepared = load_prepared(target.out)
        compiled = {p: compile_marker_dir(target, p) for p in options.platforms}
        layers = target_layers(target)
    tag = image_request(prepared, options, compiled, layers).tag
    return BuildResult(prepared, tag, compiled, layers)
