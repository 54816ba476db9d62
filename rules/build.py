"""``docker-workflow build``: build options, and one target through the doit graph.

The CLI and ``doit`` share one graph (``rules/tasks.py``) and one cache: a step whose outputs
are current for the same inputs is skipped, so a second build of an unchanged workflow does no
work, and a prompt edit only rebuilds the image's top layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rules.compile import CompileRequest
from rules.console import err_console
from rules.docker_env import default_builder_image, ensure_engine
from rules.image import ImageRequest, default_tag
from rules.paths import target_dir
from rules.pipeline import Prepared, default_name, load_prepared, step_analyze
from rules.platforms import DEFAULT_PLATFORMS

# For users with a registry: the official image, pinned. Offline: `docker-workflow bases`.
OFFICIAL_BUILDER = "python:3.11.11-slim-bookworm"


@dataclass
class BuildOptions:
    """The options of ``build`` (and of a ``workflow_image`` target in ``dodo.py``)."""

    platforms: list[str] = field(default_factory=lambda: list(DEFAULT_PLATFORMS))
    compiler: str = "nuitka"
    runtime: str = "scratch"
    builder_image: str | None = None
    tag: str | None = None
    push: bool = False
    oci_path: Path | None = None
    tools_dirs: list[Path] | None = None
    model: str | None = None

    def resolved_builder(self) -> str:
        return default_builder_image(self.builder_image) or OFFICIAL_BUILDER


@dataclass(frozen=True)
class BuildResult:
    prepared: Prepared
    tag: str
    compiled: dict[str, Path]


def image_request(
    prepared: Prepared, options: BuildOptions, compiled: dict[str, Path]
) -> ImageRequest:
    analysis = prepared.analysis
    return ImageRequest(
        workflow_id=analysis.workflow_id,
        version=analysis.version,
        bundle_path=prepared.bundle_path,
        bundle_digest=prepared.bundle_digest,
        engine_digest=prepared.engine_digest,
        models=analysis.models,
        tools=[*analysis.llm_tools, *analysis.executable_tools],
        compiled=compiled,
        tag=options.tag or default_tag(analysis.workflow_id),
        runtime=options.runtime,
        push=options.push,
        oci_path=options.oci_path,
    )


def compile_request(prepared: Prepared, options: BuildOptions, platform: str) -> CompileRequest:
    return CompileRequest(
        engine_dir=prepared.engine_dir,
        engine_digest=prepared.engine_digest,
        platform=platform,
        compiler=options.compiler,
        builder_image=options.resolved_builder(),
    )


def build_workflow(path: Path, options: BuildOptions, name: str | None = None) -> BuildResult:
    """Build the image of the workflow at ``path`` through the doit graph (shared with ``doit``).

    Steps whose outputs are current are skipped; the first failing step's error is raised.
    """
    from rules.tasks import Target, build_targets, compile_marker_dir

    target = Target(name or default_name(path), Path(path), options)
    ensure_engine_unless_invalid(target)
    build_targets([target])
    prepared = load_prepared(target_dir(target.name))
    compiled = {p: compile_marker_dir(target, p) for p in options.platforms}
    tag = image_request(prepared, options, compiled).tag
    err_console().print(f"{tag} is ready ({', '.join(options.platforms)})")
    return BuildResult(prepared, tag, compiled)


def ensure_engine_unless_invalid(target) -> None:
    """Check the workflow first (its errors matter more), then that Docker can be used."""
    step_analyze(
        target.workflow, target_dir(target.name), target.options.tools_dirs, target.options.model
    )
    ensure_engine()
