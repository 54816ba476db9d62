"""Pipeline step 4: compile the rendered engine into a standalone program, per platform.

Each platform compiles in its own builder platform (arm64 under QEMU: Nuitka cannot
cross-compile) via ``buildx build --target export --output type=local``, so the result lands
in ``cache/compiled/<key>/<arch>/`` as plain files: ``app/`` (the program), the ELF closure
(``lib/...``), ``.meta/``. The key hashes everything that goes into the compile (the sources,
compiler and flags, builder image, the Dockerfile and scripts, the bytes of the toolchain
files), never the workflow's data. With ``--compiler nuitka`` what is compiled is the shared
program (``runner/program/``: nothing about the workflow), so every workflow shares one compile
per platform and its modules come as a layer (``rules/stages/modules_layer.py``); the other
compilers compile the workflow's engine (``runner/engine/``), and its pip packages are installed
in the builder from the lock's wheels, offline and checked against their hashes. Nuitka's and
ccache's caches live in a BuildKit cache mount, so a recompile of a slightly changed engine is
warm. The compiler itself (Nuitka, PyInstaller) comes installed and byte-compiled from the
host as the named build context ``site`` (``rules/stages/toolchain_site.py``): nothing of it is
installed under QEMU, and the toolchain layer is a copy. BuildKit's layer cache is not
exported: what a CI job restoring ``cache/`` needs is there as files (``cache/compiled/``,
``cache/toolchain/``), and the export cost 5-18 s per compile (the Zig layer alone is 160 MB).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rules.docker.buildx import build
from rules.docker.dockerfiles import docker_file
from rules.docker.image_store import image_labels
from rules.errors import UserError
from rules.fsutil import locked, replace_tree, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.stages import program_stdlib
from rules.stages.lock import ENGINE_LOCK_FILE, ensure_wheel, lock_wheels, requirements_txt
from rules.stages.render import STDLIB_ZIP_MARKER
from rules.stages.toolchain import ZIG, folder_digest, host_arch, toolchain_dir, zig_dir
from rules.stages.toolchain_site import site_dir

COMPILERS = ("nuitka", "onefile", "pyinstaller", "none")
DOCKER_FILES = (
    "Dockerfile.compile",
    "compile.sh",
    "elf_closure.py",
    "nuitka_startup.py",
    "inittab.py",
    "frozen.py",
)


@dataclass(frozen=True)
class CompileRequest:
    """Everything that decides a compile's output."""

    engine_dir: Path
    engine_digest: str
    platform: str
    compiler: str
    builder_image: str
    cross: str = "auto"  # "auto": Zig as the C compiler for a foreign platform; "off": emulate
    # Size measures switched off, for bench/images.py to measure each one alone (compile.sh
    # lists them); empty for every real build.
    tuning: tuple[str, ...] = ()

    @property
    def arch(self) -> str:
        return arch_of(self.platform)

    @property
    def cross_compiler(self) -> str | None:
        """``"zig"`` when the C part runs natively for a foreign platform, else None.

        Nuitka itself cannot cross-compile: it runs in a builder of the target platform (under
        QEMU). Its C compiler need not: a native Zig targeting that platform does the C part,
        most of a cold compile, at full speed.
        """
        foreign = self.arch != host_arch()
        if self.cross == "off" or not foreign or self.compiler not in ("nuitka", "onefile"):
            return None
        return "zig"


def compile_key(request: CompileRequest) -> str:
    toolchain = toolchain_dir(request.compiler, request.arch)
    facts = {
        "engine": request.engine_digest,
        "platform": request.platform,
        "compiler": request.compiler,
        "builder": request.builder_image,
        "docker": {n: hashlib.sha256(docker_file(n)).hexdigest() for n in DOCKER_FILES},
        "toolchain": folder_digest(toolchain),
        "cross": request.cross_compiler and [ZIG, host_arch()],
    }
    if request.tuning:
        facts["tuning"] = sorted(request.tuning)
    if _zips_stdlib(request):
        facts["stdlib_zip"] = program_stdlib.code_digest()
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def _zips_stdlib(request: CompileRequest) -> bool:
    """Whether this compile is the shared program's, with its standard library zipped beside
    it (``rules/stages/program_stdlib.py``)."""
    marked = (request.engine_dir / STDLIB_ZIP_MARKER).is_file()
    return marked and request.compiler == "nuitka" and "no-zip" not in request.tuning


def _copy_packages(request: CompileRequest, dest: Path) -> None:
    """The lock's wheels for this platform and a hash-checked requirements file into ``dest``
    (an empty requirements file when the workflow needs no packages)."""
    dest.mkdir(parents=True, exist_ok=True)
    lock_path = request.engine_dir / ENGINE_LOCK_FILE
    lock = json.loads(lock_path.read_text()) if lock_path.exists() else {}
    wheels = lock_wheels(lock, request.platform)
    for wheel in wheels:
        shutil.copyfile(ensure_wheel(wheel, request.platform), dest / wheel["file"])
    (dest / "requirements.txt").write_text(requirements_txt(wheels))


def compiled_dir(request: CompileRequest) -> Path:
    return cache_dir() / "compiled" / compile_key(request) / request.arch


def compile_engine(request: CompileRequest) -> Path:
    """Compile (or reuse) the program for one platform; return ``cache/compiled/<key>/<arch>``."""
    if request.compiler not in COMPILERS:
        raise UserError(
            f"unknown compiler {request.compiler!r}: choose from {', '.join(COMPILERS)}"
        )
    target = compiled_dir(request)
    if (target / "app").is_dir():
        return target
    # One compile per architecture at a time: a second build of the same engine waits and
    # reuses the result.
    with locked(cache_dir() / f".compile-{request.arch}.lock"):
        if (target / "app").is_dir():  # another build finished it while we waited
            return target
        _compile_into(request, target)
    return target


def check_builder(reference: str, platform: str) -> None:
    """Fail before the compile, with the fix, when the builder cannot be right: one of ours
    (``docker-workflow bases``: never in a registry) that is not here, or one made for other
    platforms (a native-only builder from a first run is not a two-platform one)."""
    from rules.stages.bases import (  # only when compiling: doit loads this
        IMAGE_NAME,
        PLATFORMS_LABEL,
    )

    labels = image_labels(reference)
    if labels is None:
        if reference.startswith(f"{IMAGE_NAME}:"):
            raise UserError(
                f"builder image {reference} is not in the Docker engine: make it with"
                " 'docker-workflow bases' (docker-workflow doctor says what else is missing)"
            )
        return  # a registry image: buildx pulls it
    made_for = [p for p in labels.get(PLATFORMS_LABEL, "").split(",") if p]
    if made_for and platform not in made_for:
        raise UserError(
            f"builder image {reference} was made for {', '.join(made_for)} only, not {platform}:"
            " make one for both platforms with 'docker-workflow bases' (docker-workflow doctor)"
        )


def _compile_into(request: CompileRequest, target: Path) -> None:
    check_builder(request.builder_image, request.platform)
    context = staging_dir(cache_dir() / "contexts" / f"compile-{target.parent.name}-{request.arch}")
    output = staging_dir(target)
    try:
        shutil.copytree(request.engine_dir, context / "engine")
        inputs = context / "inputs"
        _copy_packages(request, inputs / "packages")
        for name in DOCKER_FILES:
            (inputs if name != "Dockerfile.compile" else context).joinpath(name).write_bytes(
                docker_file(name)
            )
        options: dict = {}
        build_args = {
            "BUILDER_IMAGE": request.builder_image,
            "COMPILER": request.compiler,
            "CROSS": request.cross_compiler or "",
            "TUNING": " ".join(sorted(request.tuning)),
        }
        what = f"compiling the engine with {request.compiler} for {request.platform}"
        hint = (
            f"The compile used builder image {request.builder_image}: make one with"
            " 'docker-workflow bases', or pass --builder-image (docker-workflow doctor)."
        )
        try:
            site = site_dir(request.compiler, request.arch, request.builder_image)
        except UserError as error:  # the builder could not even install the compiler
            raise UserError(f"{what} failed: {error}\n{hint}") from None
        options["build_contexts"] = {"site": str(site)}
        if request.cross_compiler == "zig":
            options["build_contexts"]["zig"] = str(zig_dir())
        if os.environ.get("DOCKER_WORKFLOW_NO_CACHE") == "1":
            options["cache"] = False  # compile for real, even if BuildKit remembers the result
        build(
            what,
            context,
            **options,
            file=context / "Dockerfile.compile",
            platforms=[request.platform],
            build_args=build_args,
            target="export",
            output={"type": "local", "dest": str(output)},
            hint=hint,
        )
        if not (output / "app").is_dir():
            raise UserError(f"compiling for {request.platform} produced no program")
        if _zips_stdlib(request):
            with_engine = "compiled-engine" not in request.tuning
            program_stdlib.zip_program_stdlib(
                request.builder_image, request.platform, output, request.engine_dir, with_engine
            )
        replace_tree(output, target)
    finally:
        shutil.rmtree(context, ignore_errors=True)
        shutil.rmtree(output, ignore_errors=True)
