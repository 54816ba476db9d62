"""Build options, and the factories that turn a prepared workflow plus options into requests.

Shared by the doit tasks (``rules/graph/tasks.py``), the declarations
(``rules/graph/targets.py``) and the CLI's way in (``rules/graph/build.py``), so that none of
them imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rules.docker.engine import default_builder_image
from rules.platforms import DEFAULT_PLATFORMS

if TYPE_CHECKING:  # imported where used: doit loads this module on every run
    from rules.stages.compile import CompileRequest
    from rules.stages.image_request import ImageRequest
    from rules.stages.modules_layer import LayerRequest
    from rules.stages.prepared import Prepared

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
    labels: dict[str, str] = field(default_factory=dict)
    cross: str = "auto"  # "off": compile a foreign platform's C under emulation too
    cache: Path | None = None  # the build output folder (``-o DIR``); None: rules.paths decides

    def resolved_builder(self) -> str:
        return default_builder_image(self.builder_image) or OFFICIAL_BUILDER


def image_request(
    prepared: Prepared,
    options: BuildOptions,
    compiled: dict[str, Path],
    layers: dict[str, Path] | None = None,
) -> ImageRequest:
    from rules.stages.image_names import check_reference, default_tag
    from rules.stages.image_request import ImageRequest

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
        layers=dict(layers or {}),
        tag=check_reference(options.tag) if options.tag else default_tag(analysis.workflow_id),
        runtime=options.runtime,
        push=options.push,
        oci_path=options.oci_path,
        engine_dir=prepared.engine_dir,
        extra_labels=dict(options.labels),
    )


def layers_modules(compiler: str) -> bool:
    """Whether the workflow's modules and packages come as a layer beside one shared program
    (``nuitka``), rather than compiled into a program of the workflow's own (``onefile`` is
    one file by definition; ``pyinstaller`` and ``none`` carry them themselves)."""
    return compiler == "nuitka"


def compile_request(prepared: Prepared, options: BuildOptions, platform: str) -> CompileRequest:
    from rules.stages.compile import CompileRequest

    shared = layers_modules(options.compiler)
    return CompileRequest(
        engine_dir=prepared.program_dir if shared else prepared.engine_dir,
        engine_digest=prepared.program_digest() if shared else prepared.engine_digest,
        platform=platform,
        compiler=options.compiler,
        builder_image=options.resolved_builder(),
        cross=options.cross,
    )


def layer_request(
    prepared: Prepared, options: BuildOptions, platform: str, program: Path
) -> LayerRequest:
    """The module layer of ``prepared`` for ``platform`` beside the shared ``program``."""
    from rules.stages.lock import lock_wheels
    from rules.stages.modules_layer import LayerRequest
    from rules.stages.prepared import read_lock

    analysis = prepared.analysis
    lock = read_lock(prepared.out_dir.parent)
    return LayerRequest(
        platform=platform,
        builder_image=options.resolved_builder(),
        program=program,
        imports=analysis.module_users,
        optional=frozenset(analysis.optional_imports),
        https=analysis.https,
        cjk_codecs=analysis.cjk_codecs,
        wheels=tuple(lock_wheels(lock, platform)),
        unicodedata=tuple(analysis.unicodedata_users),
    )
