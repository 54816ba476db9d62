"""Files of a builder image on the host, without running it: ``docker create`` + ``docker cp``.

``docker cp`` streams a tar of a path in a created (never started) container, so reading the
files of an arm64 builder takes no emulator. :class:`BuilderFiles` copies folders out of one
and :class:`LibrarySearch` finds the shared libraries an ELF file loads the way the builder's
loader would (``ld.so.conf``'s folders, then the default ones; ``DT_NEEDED`` read by
``rules/stages/elf_needed.py``), naming each by the path ``ldd`` would print in the builder.
"""

from __future__ import annotations

import glob
import os
import posixpath
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rules.errors import UserError
from rules.stages.elf_needed import needed_libraries

MAX_LINKS = 40  # symbolic links followed for one path before giving up (a loop)


class BuilderFiles:
    """Copies out of one created container of the builder (see :func:`builder_files`)."""

    def __init__(self, container: str) -> None:
        self.container = container

    def copy_out(
        self, path: str, root: Path, keep: Callable[[str], bool], links: bool = True
    ) -> bool:
        """Folder or file ``path`` of the builder to ``root/<path>``: the regular files, folders
        and (``links``) symbolic links whose builder path ``keep`` accepts; False when the
        builder has no such path."""
        parent = posixpath.dirname(path.rstrip("/"))
        process = subprocess.Popen(
            ["docker", "cp", f"{self.container}:{path}", "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        found = False
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                for member in archive:
                    found = True
                    name = posixpath.normpath(posixpath.join(parent, member.name))
                    if not name.startswith("/") or ".." in name.split("/") or not keep(name):
                        continue
                    target = root / name.lstrip("/")
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.issym() and links:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.unlink(missing_ok=True)
                        os.symlink(member.linkname, target)
                    elif member.isfile():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        source = archive.extractfile(member)
                        assert source is not None
                        with target.open("wb") as handle:
                            shutil.copyfileobj(source, handle)
                        os.utime(target, (member.mtime, member.mtime))
        except tarfile.ReadError:
            found = False  # no such path: docker cp wrote nothing
        finally:
            process.stdout.close()
            process.wait()
        return found and process.returncode == 0


@contextmanager
def builder_files(builder_image: str, platform: str) -> Iterator[BuilderFiles]:
    """A created, never started, container of the builder for ``platform``; removed after."""
    result = subprocess.run(
        ["docker", "create", "--platform", platform, "--network", "none", builder_image, "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = _docker_failure(result.stderr)
        raise UserError(f"reading builder image {builder_image} for {platform} failed: {reason}")
    container = result.stdout.strip()
    try:
        yield BuilderFiles(container)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def _is_library(path: str) -> bool:
    name = posixpath.basename(path)
    return ".so" in name and not name.endswith((".a", ".py"))


def ld_so_conf_dirs(etc: Path) -> list[str]:
    """The folders ``/etc/ld.so.conf`` names, its ``include`` lines followed (``etc``: where the
    builder's ``/etc/ld.so.conf*`` were copied to)."""
    found: list[str] = []

    def read(path: Path, depth: int) -> None:
        if depth > 8 or not path.is_file():
            return
        for raw in path.read_text(errors="replace").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("include"):
                for pattern in line.split()[1:]:
                    absolute = posixpath.join("/etc", pattern)
                    for match in sorted(glob.glob(str(etc) + absolute[len("/etc") :])):
                        read(Path(match), depth + 1)
            elif line.startswith("/") and line not in found:
                found.append(line.rstrip("/") or "/")

    read(etc / "ld.so.conf", 0)
    return found


class LibrarySearch:
    """Where the builder's loader finds each soname, from folders copied into ``staging``."""

    def __init__(
        self, files: BuilderFiles, staging: Path, dirs: list[str], loader: str | None
    ) -> None:
        self.files = files
        self.staging = staging
        self.dirs = dirs
        self.loader = loader  # the executables' PT_INTERP: ldd names the loader by this path
        self._copied: set[str] = set()
        self._closure: dict[str, tuple[list[str], list[str]]] = {}

    def _ensure(self, folder: str) -> None:
        if folder not in self._copied:
            self._copied.add(folder)
            depth = folder.rstrip("/").count("/") + 1

            def top_level_library(path: str) -> bool:
                # Not the folder itself: a folder that is a link is never made on the host
                # (an absolute one would point into this machine's own files).
                return path.count("/") == depth and _is_library(path)

            self.files.copy_out(folder, self.staging, top_level_library)

    def host_path(self, path: str) -> Path | None:
        """The copied file that builder path ``path`` is (symbolic links followed in the
        builder's tree), or None when the builder has no such file."""
        for _ in range(MAX_LINKS):
            folder = posixpath.dirname(path)
            self._ensure(folder)
            local = self.staging / path.lstrip("/")
            if local.is_symlink():
                path = posixpath.normpath(posixpath.join(folder, os.readlink(local)))
                continue
            return local if local.is_file() else None
        return None

    def find(self, soname: str) -> str | None:
        """The builder path of ``soname`` as ``ldd`` names it, or None when it is not there."""
        if self.loader and soname == posixpath.basename(self.loader):
            return self.loader
        for folder in self.dirs:
            if self.host_path(f"{folder}/{soname}") is not None:
                return f"{folder}/{soname}"
        return None

    def content(self, path: str) -> Path:
        """The copied file of a path :meth:`find` returned (the loader: found by soname)."""
        local = self.host_path(path)
        if local is None and path == self.loader:
            for folder in self.dirs:
                local = self.host_path(f"{folder}/{posixpath.basename(path)}")
                if local is not None:
                    break
        if local is None:
            raise UserError(f"the builder names {path} but has no such file")
        return local

    def closure(self, elf: Path) -> tuple[list[str], list[str]]:
        """(libraries, missing): every builder path ``elf`` loads, directly or through its
        libraries, and the sonames the loader would not find; both sorted, as ``ldd`` lists."""
        found: set[str] = set()
        missing: set[str] = set()
        pending = list(needed_libraries(elf))
        seen: set[str] = set()
        while pending:
            soname = pending.pop()
            if soname in seen:
                continue
            seen.add(soname)
            path = self.find(soname)
            if path is None:
                missing.add(soname)
                continue
            found.add(path)
            pending.extend(needed_libraries(self.content(path)))
        return sorted(found), sorted(missing)


def run_builder(
    builder_image: str,
    platform: str,
    args: list[str],
    mounts: dict[Path, str],
    what: str,
    stdin: str | None = None,
    accept: tuple[int, ...] = (0,),
) -> str:
    """``python3 ARGS`` in the builder for ``platform``, as this user, without network, with
    host folders mounted (``{host: container path}``); its stdout. An exit code not in
    ``accept`` is a one-line error naming ``what``."""
    volumes = [arg for host, inside in mounts.items() for arg in ("-v", f"{host}:{inside}")]
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            *(["-i"] if stdin is not None else []),
            "--platform",
            platform,
            "--network",
            "none",
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            *volumes,
            "--entrypoint",
            "python3",
            builder_image,
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in accept:
        reason = _docker_failure(result.stderr)
        raise UserError(f"{what} in builder image {builder_image} for {platform} failed: {reason}")
    return result.stdout


def _docker_failure(stderr: str) -> str:
    """The line that says why a ``docker create``/``docker run`` failed: the docker CLI's own
    failure (no such image, no python3 in it) is its "docker: " line, after which comes only
    "Run 'docker run --help' for more information"; otherwise the last line (the program's)."""
    lines = stderr.strip().splitlines() or ["no output"]
    return next((line for line in reversed(lines) if line.startswith("docker: ")), lines[-1])
