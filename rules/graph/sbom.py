"""``docker-workflow sbom``: a workflow's SBOM for one platform, as its image ships it.

Apart from ``rules/stages/sbom.py`` on purpose: this reaches the whole pipeline (the graph up to the
compile and the module layer), which the image step's code fingerprint must not cover.
"""

from __future__ import annotations

from pathlib import Path

from rules.graph.options import BuildOptions


def workflow_sbom(path: Path, options: BuildOptions, platform: str) -> bytes:
    """The SBOM for ``platform`` of the image of ``path`` built with ``options``: the graph up
    to the compiles (no image is built or replaced), then the bytes that image ships.

    ``options.platforms`` must be those of the image (``build``'s default, both), not just
    ``platform``: with packages, the lock of every platform is part of the engine, so a
    one-platform graph would describe another engine."""
    from rules.docker.engine import ensure_engine
    from rules.graph.build import target_for
    from rules.graph.options import image_request
    from rules.graph.run import build_targets
    from rules.graph.tasks import compile_marker_dir, target_layers
    from rules.stages.pipeline import analyze_file
    from rules.stages.prepared import load_prepared
    from rules.stages.sbom import sbom_json

    target = target_for(path, options)
    analyze_file(target.workflow, options.tools_dirs, options.model)  # its errors first
    ensure_engine()
    build_targets([target], step="layer")
    compiled = {platform: compile_marker_dir(target, platform)}
    layers = {p: folder for p, folder in target_layers(target).items() if p == platform}
    request = image_request(load_prepared(target.out), options, compiled, layers)
    return sbom_json(request, platform)
