"""``docker-workflow bases``: a local multi-platform builder image, with no registry.

Users with a registry build on an official Python image (``python:3.11-slim-bookworm``). Where
no registry can be reached, this module makes an equivalent builder from Debian packages: one
root file system per architecture (arm64 runs under QEMU), with ``mmdebstrap`` for this
machine's architecture and ``debootstrap`` for a foreign one (:func:`bootstrap_tool` says why),
then one multi-platform image ``FROM scratch`` with
``ADD rootfs-${TARGETARCH}.tar /``. Two root file systems are made at the same time: one
downloads while the other unpacks or runs under QEMU.

The image tag names its architectures and carries a digest of the recipe (tool, suite,
packages, platforms), so it is built once and reused while the recipe is unchanged, and a
builder made for this machine's platform only (``--platform linux/amd64``: all a first run
needs) is never taken for a two-platform one; its label :data:`PLATFORMS_LABEL` says the same
to the compile step and ``docker-workflow doctor``. Root file system tarballs are kept in
``cache/bases`` by recipe digest until an image of every default platform holds them, so the
two-platform image after a native one reuses the native tarball.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules.console import err_console
from rules.docker.buildx import build
from rules.docker.engine import require_docker_cli
from rules.docker.image_store import local_image
from rules.errors import UserError
from rules.paths import cache_dir
from rules.platforms import DEFAULT_PLATFORMS, arch_of
from rules.progress import BootstrapLog, status
from rules.stages.toolchain import host_arch

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
    # Without make, gcc runs LTO's link-time jobs one after another (Nuitka warns; measured:
    # 38 s of serial LTRANS for the engine on amd64).
    "make",
    "patchelf",
    "ccache",
    "ca-certificates",
)
RECIPE_VERSION = "2"
IMAGE_NAME = "docker-workflow/builder"
PLATFORMS_LABEL = "docker-workflow.builder.platforms"
TOOLS = ("mmdebstrap", "debootstrap")
TOOL_ENV = "DOCKER_WORKFLOW_BOOTSTRAP"
MMDEBSTRAP_HOOKS = "/usr/share/mmdebstrap/hooks"

_DOCKERFILE = """FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
LABEL {label}={platforms}
CMD ["/bin/bash"]
"""


def bootstrap_tool(arch: str) -> str:
    """The tool that makes ``arch``'s root file system; ``DOCKER_WORKFLOW_BOOTSTRAP`` chooses.

    This machine's architecture: mmdebstrap (one apt run, dpkg without fsync; measured 1.4 min
    against 2.5 with debootstrap, amd64, in the same period). A foreign one, whose package
    scripts run under QEMU: debootstrap (measured, arm64: 4.2 min; mmdebstrap 7.9 min, and
    over 6 in a second run: it runs apt itself inside the emulated chroot). Either when only
    one is installed.
    """
    wanted = os.environ.get(TOOL_ENV)
    if wanted:
        if wanted not in TOOLS:
            raise UserError(f"{TOOL_ENV}={wanted!r}: choose from {', '.join(TOOLS)}")
        return wanted
    preferred = TOOLS if arch == host_arch() else tuple(reversed(TOOLS))
    return next((tool for tool in preferred if shutil.which(tool)), preferred[0])


def missing_tools(tool: str) -> list[str]:
    """The Debian packages that ``tool`` needs and this machine lacks (empty: all there).

    mmdebstrap's eatmydata hook runs ``dpkg-architecture``, which only ``dpkg-dev`` brings: a
    fresh Debian without it fails deep inside the bootstrap, so it is asked for up front."""
    needed = {tool: tool}
    if tool == "mmdebstrap":
        needed["dpkg-architecture"] = "dpkg-dev"
    return [package for command, package in needed.items() if shutil.which(command) is None]


def _dockerfile(platforms: list[str]) -> str:
    return _DOCKERFILE.replace("{label}", PLATFORMS_LABEL).replace(
        "{platforms}", ",".join(sorted(platforms))
    )


def _rootfs_key(arch: str, tool: str) -> str:
    """A digest of the command that makes the root file system (tool, options, packages)."""
    recipe = "\n".join([RECIPE_VERSION, *_bootstrap_command(tool, arch, Path("ROOT"))])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def builder_tag(platforms: list[str]) -> str:
    """``docker-workflow/builder:bookworm-amd64-arm64-<recipe digest>``: the same for the same
    recipe, different for a different set of platforms."""
    archs = sorted(arch_of(p) for p in platforms)
    recipe = "\n".join(
        [
            RECIPE_VERSION,
            *(_rootfs_key(a, bootstrap_tool(a)) for a in archs),
            _dockerfile(platforms),
        ]
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{IMAGE_NAME}:{SUITE}-{'-'.join(archs)}-{digest}"


def _run_logged(command: list[str], log: Path, what: str, shown=None) -> None:
    """Run ``command`` with its output appended to ``log`` (and fed to ``shown``, a progress
    step, line by line); a failure is a :class:`UserError` with the log's last lines."""
    with (
        log.open("ab") as handle,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process,
    ):
        for raw in process.stdout:
            handle.write(raw)
            if shown is not None:
                shown.feed(raw.decode(errors="replace").rstrip())
        result = process.wait()
    if result != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise UserError(
            f"{what} failed (exit {result}); last lines of {log}:\n  " + "\n  ".join(tail)
        )


def _bootstrap_command(tool: str, arch: str, dest: Path) -> list[str]:
    """The command that makes the root file system ``dest`` (a folder, or for mmdebstrap the
    tarball itself: it packs it without root-owned temporary trees)."""
    if tool == "mmdebstrap":
        return [
            "mmdebstrap",
            "--mode=root",
            f"--architectures={arch}",
            "--variant=minbase",
            # What debootstrap installs: the packages asked for and their dependencies only,
            # merged /usr by symlinks with usr-is-merged (not usrmerge, which brings perl).
            "--aptopt=APT::Install-Recommends false",
            f"--hook-dir={MMDEBSTRAP_HOOKS}/merged-usr",
            # dpkg without fsync: much faster, above all under QEMU (nothing is lost: a failed
            # run is thrown away).
            f"--hook-dir={MMDEBSTRAP_HOOKS}/eatmydata",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(dest),
            MIRROR,
        ]
    return [
        "debootstrap",
        f"--arch={arch}",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(dest),
        MIRROR,
    ]


def rootfs_tarball(arch: str, workdir: Path, tool: str | None = None) -> Path:
    """``workdir/rootfs-<recipe digest>-ARCH.tar``, made with ``tool`` if it is not there yet."""
    tool = tool or bootstrap_tool(arch)
    target = workdir / f"rootfs-{_rootfs_key(arch, tool)}-{arch}.tar"
    if target.exists():
        return target
    lacking = missing_tools(tool)
    if lacking:
        raise UserError(
            f"{tool} needs {', '.join(lacking)}: apt-get install {' '.join(lacking)}"
            " (scripts/setup.sh does; docker-workflow doctor says what else is missing)"
        )
    if os.geteuid() != 0:
        raise UserError(f"making a builder root file system needs root ({tool}): run as root")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{tool}-{arch}.log"
    log.write_text("")
    partial = workdir / f"{target.stem}.partial.tar"  # mmdebstrap packs what ends in .tar
    root = Path(tempfile.mkdtemp(prefix=f"rootfs-{arch}.", dir=workdir))
    try:
        with status(f"root file system for {arch} ({tool} {SUITE})", BootstrapLog()) as shown:
            if tool == "mmdebstrap":
                # mmdebstrap writes the tarball itself and drops apt's lists and caches.
                _run_logged(_bootstrap_command(tool, arch, partial), log, f"{tool} {arch}", shown)
            else:
                _run_logged(_bootstrap_command(tool, arch, root), log, f"{tool} {arch}", shown)
                # Package caches and lists are not needed in a builder and only cost size.
                for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                    for item in (root / leftover).glob("*"):
                        if item.is_file():
                            item.unlink()
                shown.update("packing")
                _run_logged(
                    ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                    log,
                    f"packing the {arch} root file system",
                )
            os.replace(partial, target)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        partial.unlink(missing_ok=True)
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
    archs = sorted(arch_of(p) for p in platforms)
    # Both at once: one downloads while the other unpacks or configures under QEMU.
    with ThreadPoolExecutor(max_workers=len(archs)) as pool:
        tarballs = list(pool.map(lambda arch: rootfs_tarball(arch, workdir), archs))
    context = Path(tempfile.mkdtemp(prefix="builder-context.", dir=workdir))
    try:
        for arch, tarball in zip(archs, tarballs, strict=True):
            os.link(tarball, context / f"rootfs-{arch}.tar")
        (context / "Dockerfile").write_text(_dockerfile(platforms))
        build(
            f"building {tag} for {', '.join(platforms)}",
            context,
            file=context / "Dockerfile",
            platforms=platforms,
            tags=[tag],
            # Straight into the engine's image store, not gzip-compressed: the builder never
            # leaves this machine, and compressing its 600 MB layer took 72 of the 95 s this
            # build took on a fresh, busy machine (uncompressed: 5 s against 18 s for 285 MB).
            output={"type": "image", "compression": "uncompressed"},
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    if local_image(builder_tag(DEFAULT_PLATFORMS)) is not None:
        for tarball in workdir.glob("rootfs-*.tar"):
            tarball.unlink()  # an image of every default platform holds them now
    err_console().print(f"built builder image {tag}")
    return tag
