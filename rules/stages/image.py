"""Pipeline step 5: the runtime image, multi-platform, built from files (no RUN, no builder).

The image is ``FROM scratch`` (or Alpine) plus its layers: the compiled program with its ELF
closure (shared by every workflow built with the same settings), the workflow's module layer
(``rules/stages/modules_layer.py``; empty for compilers that compile the modules in), then
``bundle.json`` and the SBOM. Its build needs no builder image and no network: it only copies
files that earlier steps produced, so a prompt edit rebuilds one small layer in about a second.

Reproducible: every file in the context has mtime 0, ``SOURCE_DATE_EPOCH=0`` fixes the config
dates and provenance attestations are off, so the same inputs give the same image digest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

from rules.docker.buildx import build
from rules.docker.dockerfiles import docker_file
from rules.docker.image_store import forget, image_labels
from rules.errors import UserError
from rules.fsutil import locked, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.stages.image_request import ImageRequest
from runner_template.bundle_format import BUNDLE_FILE

RUNTIMES = {"scratch": "scratch", "alpine": "alpine:3.20"}


def _check_runtime(request: ImageRequest) -> str:
    if request.runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {request.runtime!r}: choose from {', '.join(RUNTIMES)}")
    if request.runtime == "alpine":
        for platform, folder in request.compiled.items():
            libc = (folder / ".meta" / "libc").read_text().strip()
            if libc != "musl":
                raise UserError(
                    f"--runtime alpine needs a musl (Alpine) builder, but the {platform} program"
                    f" was compiled against {libc}, which does not run on Alpine: pass"
                    " --builder-image python:3.11-alpine3.20 (needs a registry), or use the"
                    " default scratch runtime"
                )
    return RUNTIMES[request.runtime]


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link ``source`` into ``target`` (same file system: no copying of megabytes)."""
    for folder, _, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        if relative.parts[:1] == (".meta",):
            continue
        (target / relative).mkdir(parents=True, exist_ok=True)
        os.chmod(target / relative, stat.S_IMODE(os.stat(folder).st_mode))
        for name in files:
            src, dst = Path(folder) / name, target / relative / name
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)


def _zero_mtimes(root: Path) -> None:
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (0, 0), follow_symlinks=False)
    os.utime(root, (0, 0))


def build_image(request: ImageRequest) -> None:
    """Build the image for every platform in ``request.compiled`` and load, push or save it.

    Builds of one tag take turns (two at once make the image store refuse the second name);
    the one that waited finds the image current and stops.
    """
    runtime = _check_runtime(request)
    lock_name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.tag)
    with locked(cache_dir() / "locks" / f"image-{lock_name}.lock"):
        if not request.push and image_is_current(request):
            return
        _build(request, runtime)


def _build(request: ImageRequest, runtime: str) -> None:
    from rules.docker.registry_push import push_failure, record_push
    from rules.stages.sbom import platform_stages, write_sboms

    context = staging_dir(cache_dir() / "contexts" / f"image-{request.workflow_id}")
    try:
        for platform, folder in request.compiled.items():
            _link_tree(folder, context / f"compiled-{arch_of(platform)}")
            # The workflow's modules (an empty folder when the program has them compiled in).
            layer = context / f"layer-{arch_of(platform)}"
            layer.mkdir()
            if platform in request.layers:
                _link_tree(request.layers[platform], layer)
        # The bundle comes inside its folder, so its layer's /app entry is the context's (mtime
        # 0), not one BuildKit stamps with the build's time when a file lands in /app.
        (context / "bundle" / "app").mkdir(parents=True)
        shutil.copyfile(request.bundle_path, context / "bundle" / "app" / BUNDLE_FILE)
        os.chmod(context / "bundle" / "app", 0o755)
        os.chmod(context / "bundle" / "app" / BUNDLE_FILE, 0o644)
        (context / "base" / "tmp").mkdir(parents=True)
        stages = platform_stages(runtime, write_sboms(request, context))
        dockerfile = docker_file("Dockerfile.image").decode().replace("{platform_stages}", stages)
        (context / "Dockerfile").write_text(dockerfile)
        _zero_mtimes(context)
        os.chmod(context / "base" / "tmp", 0o1777)
        options: dict = {
            "file": context / "Dockerfile",
            "platforms": sorted(request.compiled),
            "tags": [request.tag],
            "labels": request.labels(),
            "build_args": {"SOURCE_DATE_EPOCH": "0"},
            "provenance": False,
        }
        if request.oci_path is not None:
            request.oci_path.parent.mkdir(parents=True, exist_ok=True)
            options["output"] = {"type": "oci", "dest": str(request.oci_path), "name": request.tag}
        elif request.push:
            options["push"] = True
            options["metadata_file"] = context / "metadata.json"
        else:
            options["load"] = True
        try:
            build(f"building image {request.tag}", context, **options)
        except UserError as error:
            raise push_failure(request.tag, error) if request.push else error from None
        forget(request.tag)
        if request.push:
            record_push(request.tag, context / "metadata.json", request.labels())
        if request.oci_path is not None:
            _oci_labels_file(request.oci_path).write_text(json.dumps(request.labels()))
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _oci_labels_file(oci_path: Path) -> Path:
    """Beside an OCI tarball: the labels it was built with (its up-to-date check)."""
    return oci_path.with_name(oci_path.name + ".labels.json")


def image_is_current(request: ImageRequest) -> bool:
    """Whether ``request.tag`` already is exactly this build (bundle, engine and platforms)."""
    if request.oci_path is not None:
        meta = _oci_labels_file(request.oci_path)
        return (
            request.oci_path.exists()
            and meta.exists()
            and json.loads(meta.read_text()) == request.labels()
        )
    labels = image_labels(request.tag)
    return labels is not None and all(labels.get(k) == v for k, v in request.labels().items())
