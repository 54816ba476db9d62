"""``docker-workflow bases``: a local multi-platform builder image, with no registry.

Users with a registry build on an official Python image (``python:3.11-slim-bookworm``). Where
no registry can be reached, this module makes an equivalent builder from Debian packages:
``debootstrap`` one root file system per architecture (arm64 runs under QEMU), then one
multi-platform image ``FROM scratch`` with ``ADD rootfs-${TARGETARCH}.tar /``.

The image tag carries a digest of the recipe (suite, packages, platforms), so it is built once
and reused while the recipe is unchanged; the root file system tarballs are kept in
``cache/bases`` until the image exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rules.console import err_console, status
from rules.docker.buildx import build
from rules.docker.engine import require_docker_cli
from rules.docker.image_store import local_image
from rules.errors import UserError
from rules.paths import cache_dir
from rules.platforms import arch_of

SUITE = "bookworm"
MIRROR = os.environ.get("DOCKER_WORKFLOW_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = (
    "python3",
    "python3-dev",
    "python3-venv",
    "python3-pip",
    "python3-setuptools",
    "python3-wheel",
    "gcc",
    "libc6-dev",
    "patchelf",
    "ccache",
    "ca-certificates",
)
RECIPE_VERSION = "1"
IMAGE_NAME = "docker-workflow/builder"

_DOCKERFILE = """FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
CMD ["/bin/bash"]
"""


def builder_tag(platforms: list[str]) -> str:
    recipe = "\n".join([RECIPE_VERSION, SUITE, MIRROR, *PACKAGES, *sorted(platforms), _DOCKERFILE])
    return f"{IMAGE_NAME}:{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def _run_logged(command: list[str], log: Path, what: str) -> None:
    with log.open("ab") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise UserError(
            f"{what} failed (exit {result.returncode}); last lines of {log}:\n  "
            + "\n  ".join(tail)
        )


def rootfs_tarball(arch: str, workdir: Path) -> Path:
    """``workdir/rootfs-ARCH.tar``, made with debootstrap if it is not there yet."""
    target = workdir / f"rootfs-{arch}.tar"
    if target.exists():
        return target
    if shutil.which("debootstrap") is None:
        raise UserError(
            "debootstrap is not installed: apt-get install debootstrap (scripts/setup.sh)"
        )
    if os.geteuid() != 0:
        raise UserError("making a builder root file system needs root (debootstrap): run as root")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"debootstrap-{arch}.log"
    log.write_text("")
    root = Path(tempfile.mkdtemp(prefix=f"rootfs-{arch}.", dir=workdir))
    try:
        with status(f"debootstrap {SUITE} for {arch} (minutes; arm64 runs under QEMU)"):
            _run_logged(
                [
                    "debootstrap",
                    f"--arch={arch}",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(root),
                    MIRROR,
                ],
                log,
                f"debootstrap {arch}",
            )
            # Package caches and lists are not needed in a builder and only cost size.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (root / leftover).glob("*"):
                    if item.is_file():
                        item.unlink()
            partial = target.with_suffix(".tar.partial")
            _run_logged(
                ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                log,
                f"packing the {arch} root file system",
            )
            os.replace(partial, target)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    err_console().print(
        f"root file system for {arch}: {target} ({target.stat().st_size >> 20} MiB)"
    )
    return target


def ensure_builder_image(platforms: list[str], rebuild: bool = False) -> str:
    """Build (or reuse) the local builder image for ``platforms``; return its reference."""
    require_docker_cli()
    tag = builder_tag(platforms)
    if not rebuild and local_image(tag) is not None:
        err_console().print(f"builder image {tag} is up to date")
        return tag
    workdir = cache_dir() / "bases"
    for platform in platforms:
        rootfs_tarball(arch_of(platform), workdir)
    (workdir / "Dockerfile").write_text(_DOCKERFILE)
    build(
        f"building {tag} for {', '.join(platforms)}",
        workdir,
        file=workdir / "Dockerfile",
        platforms=platforms,
        tags=[tag],
        load=True,
    )
    for tarball in workdir.glob("rootfs-*.tar"):
        tarball.unlink()  # the image holds them now
    err_console().print(f"built builder image {tag}")
    return tag
