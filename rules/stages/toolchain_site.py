"""The compiler's Python packages installed once on the machine that builds, bytecode included.

The compile stage runs Nuitka (or PyInstaller) with the builder's own ``python3``. Installing
it there (a venv, then ``pip install`` from Nuitka's sdist) ran under QEMU for a foreign
platform: about 90 s for arm64 on an x86_64 machine, once per builder image. Here the builder
for *this* machine's platform installs the downloads of ``rules/stages/toolchain.py`` with its
own pip and setuptools (``pip install --target``; for PyInstaller's binary wheels with the
target platform's tags) and compiles them to bytecode (``unchecked-hash``: no timestamps;
bytecode is the same on every platform), into ``cache/toolchain/site/<key>/``. The compile
stage gets that folder as its named build context ``site`` at ``/toolchain`` and runs the
compiler with ``PYTHONPATH``: its toolchain layer is a copy.

Nuitka's installation depends on the Python version and the operating system only (its
setup.py chooses the inline copies by those), so one folder serves both platforms.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from functools import cache
from pathlib import Path

from rules.fsutil import locked, replace_tree, staging_dir
from rules.paths import cache_dir
from rules.progress import status
from rules.stages.builder_files import run_builder
from rules.stages.builder_python import image_id
from rules.stages.lock import BUILDER_PYTHON
from rules.stages.toolchain import WHEEL_PLATFORMS, folder_digest, host_arch, toolchain_dir

SITE = "/toolchain"  # where the compile stage has it (rules/docker/build/Dockerfile.compile)


@cache
def _code_digest() -> str:
    return hashlib.sha256(Path(sys.modules[__name__].__file__).read_bytes()).hexdigest()[:8]


def _binary_only(compiler: str) -> bool:
    """PyInstaller comes as binary wheels per platform; Nuitka as one sdist for both."""
    return compiler == "pyinstaller"


def site_dir(compiler: str, arch: str, builder_image: str) -> Path:
    """The installed compiler for ``arch`` (made once per downloads, builder and this code)."""
    downloads = toolchain_dir(compiler, arch)
    facts = {
        "code": _code_digest(),
        "compiler": compiler,
        "arch": arch if _binary_only(compiler) else "any",
        "builder": image_id(builder_image),
        "downloads": folder_digest(downloads),
    }
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]
    target = cache_dir() / "toolchain" / "site" / key
    if target.is_dir():
        return target
    with locked(target.parent / f".{key}.lock"):
        if not target.is_dir():
            with status(f"installing {compiler} for the compile stage (once per builder)"):
                _install(compiler, arch, builder_image, downloads, target)
    return target


def _install(compiler: str, arch: str, builder_image: str, downloads: Path, target: Path) -> None:
    staging = staging_dir(target)
    os.chmod(staging, 0o755)  # /toolchain in the compile stage
    try:
        files = sorted(f"/downloads/{path.name}" for path in downloads.iterdir() if path.is_file())
        if files:
            platform_args = []
            if _binary_only(compiler):
                platform_args = ["--only-binary", ":all:", "--platform", WHEEL_PLATFORMS[arch]]
                platform_args += ["--python-version", BUILDER_PYTHON, "--implementation", "cp"]
            pip = ["-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-cache-dir"]
            pip += ["--no-build-isolation", "--no-compile", "--target", "/out", *platform_args]
            mounts = {downloads: "/downloads:ro", staging: "/out"}
            native = f"linux/{host_arch()}"
            what = f"installing {', '.join(p.name for p in downloads.iterdir())}"
            run_builder(builder_image, native, [*pip, *files], mounts, what)
            # A file of another Python's syntax (an inline copy for Python 2) keeps its source
            # only: compileall's exit 1.
            compileall = ["-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
            compileall += ["-s", "/out", "-p", SITE, "/out"]
            run_builder(builder_image, native, compileall, mounts, what, accept=(0, 1))
        for folder, dirs, names in os.walk(staging):
            for name in [*dirs, *names]:
                os.utime(Path(folder) / name, (0, 0), follow_symlinks=False)
        replace_tree(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
