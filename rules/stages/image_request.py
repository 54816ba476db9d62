"""What goes into one workflow image: the request the image step builds from, and its labels.

Its own module because two steps read it: the image step (``rules/stages/image.py``) builds
from it and the SBOM step (``rules/stages/sbom.py``) describes it, and the image step calls the
SBOM step, so the request cannot live in either without a loop.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from rules.docker.dockerfiles import docker_file
from rules.docker.image_store import MANAGED_LABEL
from rules.platforms import arch_of


@dataclass(frozen=True)
class ImageRequest:
    """What goes into one workflow image and where it goes."""

    workflow_id: str
    version: str | None
    bundle_path: Path
    bundle_digest: str
    engine_digest: str
    models: list[str]
    tools: list[str]
    compiled: dict[str, Path]  # platform -> cache/compiled/<key>/<arch>
    tag: str
    runtime: str = "scratch"
    push: bool = False
    oci_path: Path | None = None
    engine_dir: Path | None = None  # the rendered engine (its package lock, for the SBOM)
    extra_labels: dict[str, str] = field(default_factory=dict)
    # platform -> cache/layers/<key>/<arch>: the workflow's modules beside a shared program
    # (``--compiler nuitka``); none for compilers that compile them in
    layers: dict[str, Path] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        return {
            MANAGED_LABEL: "true",
            "workflow.id": self.workflow_id,
            "workflow.version": self.version or "",
            "workflow.models": ",".join(self.models),
            "workflow.tools": ",".join(self.tools),
            "workflow.bundle-digest": self.bundle_digest,
            "workflow.engine-digest": self.engine_digest,
            "workflow.layers": ",".join(
                f"{arch_of(p)}:{folder.parent.name}" for p, folder in sorted(self.layers.items())
            ),
            "workflow.platforms": ",".join(sorted(self.compiled)),
            "workflow.runtime": self.runtime,
            "docker-workflow.image-recipe": image_recipe_digest(),
            "org.opencontainers.image.title": f"workflow-{self.workflow_id}",
            **self.extra_labels,
        }


@functools.cache
def image_recipe_digest() -> str:
    """Digest of the image's Dockerfile: a label, so an image made by an older recipe (another
    layout, other layers) is not taken for current when everything else matches."""
    return hashlib.sha256(docker_file("Dockerfile.image")).hexdigest()[:16]
