"""``docker-workflow build``: the whole pipeline for one workflow, one call per step.

analyze -> shake -> render (``pipeline.prepare``), then compile per platform, then the image.
Each step skips itself when its output for the same inputs exists, so a second build of an
unchanged workflow does no work, and a prompt edit only rebuilds the image's top layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from rules.compile import CompileRequest, compile_engine
from rules.docker_env import default_builder_image, ensure_engine
from rules.image import ImageRequest, build_image, default_tag, image_is_current
from rules.pipeline import Prepared, prepare
from rules.platforms import DEFAULT_PLATFORMS

# For users with a registry: the official image, pinned. Offline: `docker-workflow bases`.
OFFICIAL_BUILDER = "python:3.11.11-slim-bookworm"
console = Console(stderr=True, highlight=False)


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
    image_built: bool


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
        engine_dir=prepared.out_dir / "engine",
        engine_digest=prepared.engine_digest,
        platform=platform,
        compiler=options.compiler,
        builder_image=options.resolved_builder(),
    )


def build_workflow(path: Path, options: BuildOptions) -> BuildResult:
    """Build the image of the workflow at ``path``; steps with current outputs are skipped."""
    prepared = prepare(path, options.tools_dirs, options.model)
    ensure_engine()
    compiled = {
        platform: compile_engine(compile_request(prepared, options, platform))
        for platform in options.platforms
    }
    request = image_request(prepared, options, compiled)
    if not options.push and image_is_current(request):
        console.print(f"image {request.tag} is up to date")
        return BuildResult(prepared, request.tag, compiled, False)
    build_image(request)
    console.print(f"built {request.tag} for {', '.join(options.platforms)}")
    return BuildResult(prepared, request.tag, compiled, True)
