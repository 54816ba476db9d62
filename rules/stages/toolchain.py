"""Fetch, on the host, the Python packages the compile stage installs (it has no network).

Containers here cannot reach PyPI (and a compile that downloads is not reproducible anyway), so
``pip download`` runs on the host into ``cache/toolchain/<compiler>/<arch>/`` and the folder is
copied into the compile context. Nuitka is an sdist and builds inside the builder for either
architecture; PyInstaller ships binary wheels, so those are fetched per architecture.

The cross C compiler is Zig (the ``ziglang`` wheel: one static binary with the C headers and
glibc stubs of every target), fetched for the architecture of the machine that builds and
unpacked once into ``cache/toolchain/ziglang-<version>-<arch>/``: inside an arm64 builder
running under QEMU on an x86_64 machine, the x86_64 ``zig`` runs at native speed.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

from rules.errors import UserError
from rules.fsutil import file_sha256
from rules.paths import cache_dir

NUITKA = "nuitka==4.3.3"
PYINSTALLER = "pyinstaller==6.11.1"
ZIG = "ziglang==0.15.2"
WHEEL_PLATFORMS = {"amd64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}


def host_arch() -> str:
    """The architecture of the machine that builds (``amd64`` or ``arm64``)."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else "amd64"


def zig_dir(arch: str | None = None) -> Path:
    """The unpacked Zig toolchain for the build machine (fetched and unpacked once)."""
    arch = arch or host_arch()
    dest = cache_dir() / "toolchain" / f"{ZIG.replace('==', '-')}-{arch}"
    if (dest / "ziglang" / "zig").is_file():
        return dest
    download = cache_dir() / "toolchain" / f"{ZIG.replace('==', '-')}-{arch}.wheel"
    if not download.exists():
        _pip_download(
            ["--no-deps", "--only-binary", ":all:", "--platform", WHEEL_PLATFORMS[arch], ZIG],
            download,
            f"{ZIG} ({arch})",
        )
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (wheel,) = download.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.filename.startswith("ziglang/"):
                archive.extract(member, partial)
    (partial / "ziglang" / "zig").chmod(0o755)
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


def _pip_download(args: list[str], dest: Path, what: str) -> None:
    partial = dest.with_name(dest.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(partial), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "WARNING" not in line][-6:]
        raise UserError(
            f"downloading {what} for the compile stage failed:\n  " + "\n  ".join(lines)
        )
    partial.rename(dest)


def toolchain_dir(compiler: str, arch: str) -> Path:
    """The wheels/sdists the compile stage installs for ``compiler`` on ``arch`` (fetched once)."""
    if compiler == "none":
        dest = cache_dir() / "toolchain" / "none"
        dest.mkdir(parents=True, exist_ok=True)
        return dest
    if compiler in ("nuitka", "onefile"):
        dest = cache_dir() / "toolchain" / NUITKA
        if not dest.exists():
            _pip_download(["--no-deps", "--no-binary", ":all:", NUITKA], dest, NUITKA)
        return dest
    if compiler == "pyinstaller":
        dest = cache_dir() / "toolchain" / f"{PYINSTALLER}-{arch}"
        if not dest.exists():
            _pip_download(
                [
                    "--only-binary",
                    ":all:",
                    "--platform",
                    WHEEL_PLATFORMS[arch],
                    "--python-version",
                    "3.11",
                    "--implementation",
                    "cp",
                    PYINSTALLER,
                ],
                dest,
                f"{PYINSTALLER} ({arch})",
            )
        return dest
    raise UserError(f"unknown compiler {compiler!r}")


@cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes (memoized per process by path, size and mtime)."""
    return file_sha256(path)


def folder_digest(folder: Path) -> dict[str, str]:
    """Name -> sha256 of the bytes of every file in ``folder`` (the toolchain downloads)."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            info = path.stat()
            found[path.name] = _file_digest(path, info.st_size, info.st_mtime_ns)
    return found
